import { expect } from 'chai';
import { ACR } from '../../src/services/mfa-policy.ts';
import { Browserless } from '../helpers/browserless.ts';
import { signedInBrowser, silentSignIn } from '../helpers/sign-in.ts';
import { createTestClient, createTestUser } from '../helpers/factories.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';

/**
 * R13 (the review's further findings), prompt=none: OIDC Core §3.1.2.6 answers login_required
 * when "the Authorization Server requires End-User authentication". The login checks we add to
 * oidc-provider's policy got no error code of their own, and the provider then falls back to
 * interaction_required: a relying party doing silent renewal could not tell that the user has to
 * sign in (again, or with a second factor). Each login check is asked with prompt=none here.
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R13: prompt=none gets login_required from every login check (${storage})`, function () {
    let servers: TestServers;
    let clientId: string;
    let mfaClientId: string;

    before(async function () {
      servers = await startTestServers({ storage });
      clientId = (await createTestClient(servers.deps)).client_id;
      mfaClientId = (await createTestClient(servers.deps, { require_mfa: true })).client_id;
    });

    after(async function () {
      await servers.stop();
    });

    /** A browser with a password-only session and a grant for `clientId`. */
    async function signedIn() {
      const user = await createTestUser(servers.deps);
      return { user, ...(await signedInBrowser(servers.issuer, clientId, user)) };
    }

    /** The error a prompt=none request comes back with (or "code"). */
    async function silently(browser: Browserless, client: string, params: Record<string, string> = {}): Promise<string> {
      return (await silentSignIn(browser, client, params)).outcome;
    }

    it('R13 prompt=none with a session whose account was disabled: login_required, not interaction_required', async function () {
      const { user, browser } = await signedIn();
      expect(await silently(browser, clientId)).to.equal('code');
      await servers.deps.knex('users').where({ id: user.id }).update({ disabled: true });
      expect(await silently(browser, clientId)).to.equal('login_required');
    });

    it('R13 prompt=none asking for a second factor the session has not passed (acr_values, require_mfa): login_required', async function () {
      const { browser } = await signedIn();
      expect(await silently(browser, clientId, { acr_values: ACR.mfa })).to.equal('login_required');
      expect(await silently(browser, clientId, { acr_values: ACR.passkey })).to.equal('login_required');
      expect(await silently(browser, mfaClientId)).to.equal('login_required');
    });

    it("the provider's own login checks keep login_required (no session; max_age=0 with a session)", async function () {
      expect(await silently(new Browserless(servers.issuer), clientId)).to.equal('login_required');
      const { browser } = await signedIn();
      expect(await silently(browser, clientId, { max_age: '0' })).to.equal('login_required');
    });
  });
}
