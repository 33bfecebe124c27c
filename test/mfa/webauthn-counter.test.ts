import { expect } from 'chai';
import { relyingParty } from '../helpers/browser.ts';
import { Browserless } from '../helpers/browserless.ts';
import { createTestClient } from '../helpers/factories.ts';
import { RP_REDIRECT } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { type SoftAuthenticator } from '../helpers/soft-authenticator.ts';
import { passkeySignIn, userWithPasskey } from '../helpers/passkeys.ts';

/**
 * R6 (issue 19): a credential is flagged as a possible clone only after its signature verified.
 * Passwordless sign-in over HTTP (the login page's passkey path, reachable without a password)
 * with a software authenticator whose counter and signature the test controls.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R6: passkey counter checks after the signature (${storage})`, function () {
    let servers: TestServers;
    let rp: Awaited<ReturnType<typeof relyingParty>>;

    before(async function () {
      servers = await startTestServers({ storage });
      const registered = await createTestClient(servers.deps);
      rp = await relyingParty(servers.issuer, registered.client_id, registered.client_secret);
    });

    after(async function () {
      await servers.stop();
    });

    /** One passwordless attempt from a fresh browser: true when it reached the RP. */
    async function passkeySignedIn(soft: SoftAuthenticator, change: Parameters<SoftAuthenticator['assert']>[1]): Promise<boolean> {
      const { url } = await passkeySignIn(new Browserless(servers.issuer), (await rp.authorizationUrl()).url, (options) =>
        soft.assert(options, change),
      );
      return url.href.startsWith(RP_REDIRECT);
    }

    const flagged = async (userId: string) => (await servers.deps.mfa.webauthn.list(userId))[0]?.flagged_at ?? null;
    const regressions = (userId: string) =>
      servers.deps.knex('audit_events').where({ actor_id: userId, type: 'mfa.webauthn.counter_regression' });

    it('R6 an assertion with a bad signature and a regressed counter is refused without flagging (blocking) the credential', async function () {
      const { user, soft } = await userWithPasskey(servers);
      expect(await passkeySignedIn(soft, { counter: 5 })).to.equal(true);
      // Anyone holding the credential id (no private key) sends an old counter and a wrong signature.
      expect(await passkeySignedIn(soft, { counter: 1, badSignature: true })).to.equal(false);
      expect(await flagged(user.id)).to.equal(null);
      expect(await regressions(user.id)).to.have.length(0);
      // The owner's next assertion still works.
      expect(await passkeySignedIn(soft, { counter: 6 })).to.equal(true);
    });

    it('R6 a validly signed assertion with a regressed counter flags the credential as a possible copy', async function () {
      const { user, soft } = await userWithPasskey(servers);
      expect(await passkeySignedIn(soft, { counter: 5 })).to.equal(true);
      expect(await passkeySignedIn(soft, { counter: 5 })).to.equal(false);
      expect(await flagged(user.id)).to.be.instanceOf(Date);
      expect(await regressions(user.id)).to.have.length(1);
      // Flagged stays refused, even with a counter that moves forward again.
      expect(await passkeySignedIn(soft, { counter: 1000 })).to.equal(false);
    });
  });
}
