import { expect } from 'chai';
import * as client from 'openid-client';
import { generate } from 'otplib';
import { ACR } from '../../src/services/mfa-policy.ts';
import type { AuditEventRow } from '../../src/store/audit-events.ts';
import { call, createRp, signedInUser, userTokens } from '../helpers/api.ts';
import { Browserless, formOf } from '../helpers/browserless.ts';
import { createTestUser } from '../helpers/factories.ts';
import { authorizationRequest, RP_REDIRECT } from '../helpers/oidc.ts';
import { startTestServers, type StorageMode, type TestServers } from '../helpers/servers.ts';
import { eventually } from '../helpers/wait.ts';

/**
 * R15 (the second adversarial review): a user signed in with a password alone (acr loa:1) and
 * then given a role whose policy requires a second factor kept their session and tokens, now
 * carrying the new role's permissions, without ever passing one. Now granting a role that raises
 * the account's requirement ends its sessions and tokens (the sessions-not-before cutoff of R13),
 * and the API refuses its permission-guarded routes to a token whose acr is below what the
 * user's roles require: 401 `insufficient_user_authentication` with `acr_values` (RFC 9470), so
 * the relying party steps up. That covers the requirement rising under a session too
 * (`portcullis roles require-mfa <role> on`).
 */
for (const storage of ['redis', 'postgres'] as StorageMode[]) {
  describe(`R15 role promotion and step-up (${storage})`, function () {
    this.timeout(120_000);
    let servers: TestServers;
    let rp: client.Configuration;
    let admin: Awaited<ReturnType<typeof signedInUser>>;
    /** A role of this suite's own (the shared roles keep their policy for other suites): reads the audit log. */
    const role = `r15-reviewer-${storage}`;

    before(async function () {
      servers = await startTestServers({ storage });
      rp = await createRp(servers, { scope: 'openid offline_access records:read records:write admin' });
      admin = await signedInUser(servers, rp, { roles: ['admin'], scopes: 'admin' });
      await servers.deps.knex('roles').insert({ name: role, description: 'R15 test role', requires_mfa: false });
      await servers.deps.knex('role_permissions').insert([
        { role, permission: 'records:read' },
        { role, permission: 'audit:read' },
      ]);
    });
    after(async function () {
      await servers.stop();
    });

    /** A user with only the `user` role, signed in with the password alone in `browser`. */
    async function passwordOnlyUser() {
      const user = await createTestUser(servers.deps, { roles: ['user'] });
      const browser = new Browserless(servers.issuer);
      const tokens = await userTokens(servers, rp, user, 'records:read admin', undefined, { browser });
      const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { acr?: string };
      expect(claims.acr).to.equal(ACR.password);
      return { user, browser, token: tokens.access_token, refreshToken: tokens.refresh_token ?? '' };
    }

    async function silently(browser: Browserless): Promise<string> {
      const { url } = await browser.follow((await authorizationRequest(rp, { prompt: 'none', scope: 'openid' })).url);
      expect(url.href.startsWith(RP_REDIRECT), `stayed on ${url.pathname}`).to.equal(true);
      return url.searchParams.get('code') ? 'code' : (url.searchParams.get('error') ?? 'nothing');
    }

    async function refreshed(refreshToken: string): Promise<string> {
      return client.refreshTokenGrant(rp, refreshToken, { resource: servers.apiUrl }).then(
        (tokens) => tokens.access_token,
        (error: unknown) => `error: ${(error as { error?: string }).error ?? String(error)}`,
      );
    }

    it('R15 promoting a password-only user to admin ends their session, refresh token and access tokens; they sign in again with a second factor', async function () {
      const held = await passwordOnlyUser();
      expect((await call(servers, 'GET', '/v1/admin/audit?limit=1', held.token)).status, 'not an auditor yet').to.equal(403);

      const promoted = await call(servers, 'PATCH', `/v1/admin/users/${held.user.id}`, admin.token, { roles: ['user', 'admin'] });
      expect(promoted.status, promoted.text).to.equal(200);

      const audit = await call(servers, 'GET', '/v1/admin/audit?limit=1', held.token);
      expect(audit.status, `the password-only token with the admin's permissions: ${audit.text}`).to.equal(401);
      expect(await refreshed(held.refreshToken)).to.equal('error: invalid_grant');
      expect(await silently(held.browser)).to.equal('login_required');
      // The auth server's sweep removes what the cutoff already made worthless.
      await eventually(
        async () => expect(await servers.deps.accountIndex.list(held.user.id, 'Grant'), 'grants indexed').to.deep.equal([]),
        {
          timeoutMs: 15_000,
          intervalMs: 50,
        },
      );
      const [event] = await servers.deps
        .knex<AuditEventRow>('audit_events')
        .where({ type: 'user.updated', actor_id: admin.id })
        .orderBy('id', 'desc');
      expect(event?.data).to.deep.include({ user_id: held.user.id, signed_out: true });

      // Signing in again, the password is not enough: the admin role's second factor comes first.
      const first = await held.browser.follow((await authorizationRequest(rp, { scope: 'openid' })).url);
      const login = formOf(await first.response.text(), '/login');
      const next = await held.browser.submit(login.action, { csrf: login.csrf, email: held.user.email, password: held.user.password });
      expect(await next.response.text()).to.contain('Set up two-step sign-in');
    });

    it('R15 the requirement raised under a session (roles require-mfa): the API answers 401 insufficient_user_authentication with acr_values until the user steps up', async function () {
      const user = await createTestUser(servers.deps, { roles: ['user', role] });
      const browser = new Browserless(servers.issuer);
      const tokens = await userTokens(servers, rp, user, 'records:read admin', undefined, { browser });
      expect((await call(servers, 'GET', '/v1/admin/audit?limit=1', tokens.access_token)).status).to.equal(200);

      // The operator turns the requirement on for the role, as `portcullis roles require-mfa` does.
      expect(await servers.deps.mfa.setRoleRequiresMfa(role, true)).to.equal(true);
      servers.deps.api.rbac.invalidate(user.id);
      try {
        for (const path of ['/v1/admin/audit?limit=1', '/v1/records']) {
          const refused = await call(servers, 'GET', path, tokens.access_token);
          expect(refused.status, `${path}: ${refused.text}`).to.equal(401);
          const challenge = refused.headers.get('WWW-Authenticate') ?? '';
          expect(challenge).to.match(/^Bearer /);
          expect(challenge).to.include('error="insufficient_user_authentication"');
          expect(challenge).to.match(/error_description="[^"]+"/);
          expect(challenge).to.include(`acr_values="${ACR.mfa}"`);
          expect(refused.headers.get('Content-Type')).to.match(/^application\/problem\+json/);
          expect(refused.body).to.deep.include({
            type: 'urn:portcullis:problem:insufficient-user-authentication',
            status: 401,
            error: 'insufficient_user_authentication',
            acr_values: ACR.mfa,
          });
        }
        // Routes that need no permission still answer (the token itself is valid).
        expect((await call(servers, 'GET', '/v1/me', tokens.access_token)).status).to.equal(200);
        // A refreshed token says how the user signed in: still the password alone.
        const again = await refreshed(tokens.refresh_token ?? '');
        expect((await call(servers, 'GET', '/v1/records', again)).status).to.equal(401);

        // The user sets up an authenticator; the relying party asks for what the API named.
        const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
        if (!enrollment) throw new Error('no enrollment');
        const now = Math.floor(Date.now() / 1000);
        expect(
          await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret, epoch: now - 30 }), 'test'),
        ).to.equal(true);
        const stepped = await userTokens(servers, rp, user, 'records:read admin', enrollment.secret, {
          browser,
          params: { acr_values: ACR.mfa },
        });
        expect((await call(servers, 'GET', '/v1/admin/audit?limit=1', stepped.access_token)).status).to.equal(200);
        expect((await call(servers, 'GET', '/v1/records', stepped.access_token)).status).to.equal(200);
      } finally {
        await servers.deps.mfa.setRoleRequiresMfa(role, false);
      }
    });

    it('R15 a role change that does not raise the requirement leaves the sessions alone', async function () {
      const held = await passwordOnlyUser();
      const changed = await call(servers, 'PATCH', `/v1/admin/users/${held.user.id}`, admin.token, { roles: ['user', role] });
      expect(changed.status, changed.text).to.equal(200);
      expect((await call(servers, 'GET', '/v1/admin/audit?limit=1', held.token)).status).to.equal(200);
      expect(await silently(held.browser)).to.equal('code');
      expect(await refreshed(held.refreshToken)).to.not.match(/^error/);
    });
  });
}
