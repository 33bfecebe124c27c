import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import * as client from 'openid-client';
import { call, createRp, openApiChecker, signedInUser, userTokens } from '../helpers/api.ts';
import { createTestClient } from '../helpers/factories.ts';
import { oauthErrorOf, rejectionOf } from '../helpers/rejections.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

type AdminUser = { id: string; email: string; disabled: boolean; roles: string[] };
type UserPage = { items: AdminUser[]; next_cursor: string | null };
type AuditPage = {
  items: { id: number; type: string; actor_id: string | null; occurred_at: string; data: Record<string, unknown> }[];
  next_cursor: string | null;
};

describe('resource API: admin (users, audit) and client tokens', function () {
  this.timeout(90_000);
  let servers: TestServers;
  let rp: client.Configuration;
  let conforms: Awaited<ReturnType<typeof openApiChecker>>;
  let admin: Awaited<ReturnType<typeof signedInUser>>;
  let auditor: Awaited<ReturnType<typeof signedInUser>>;
  let member: Awaited<ReturnType<typeof signedInUser>>;
  const adminScopes = 'records:read records:write admin';

  before(async function () {
    servers = await startTestServers();
    // Only an operator-registered client may hold the admin scope.
    rp = await createRp(servers, { scope: 'openid offline_access profile email records:read records:write admin' });
    conforms = await openApiChecker(servers);
    admin = await signedInUser(servers, rp, { roles: ['admin'], scopes: adminScopes });
    auditor = await signedInUser(servers, rp, { roles: ['auditor'], scopes: adminScopes });
    member = await signedInUser(servers, rp, { roles: ['user'], scopes: adminScopes });
  });
  after(async function () {
    await servers.stop();
  });

  it('lists users with an email prefix filter and cursor pagination', async function () {
    const first = await call(servers, 'GET', '/v1/admin/users?limit=2', admin.token);
    expect(first.status, first.text).to.equal(200);
    conforms('GET', '/v1/admin/users', first);
    const page = first.body as UserPage;
    expect(page.items).to.have.length(2);
    expect(page.next_cursor).to.be.a('string');
    const second = (await call(servers, 'GET', `/v1/admin/users?limit=2&cursor=${page.next_cursor}`, admin.token)).body as UserPage;
    expect(second.items.map((u) => u.id)).to.not.include.members(page.items.map((u) => u.id));

    const prefix = member.email.slice(0, 12);
    const filtered = await call(servers, 'GET', `/v1/admin/users?email=${encodeURIComponent(prefix.toUpperCase())}`, admin.token);
    expect((filtered.body as UserPage).items.map((u) => u.id)).to.deep.equal([member.id]);
    const wildcard = (await call(servers, 'GET', '/v1/admin/users?email=%25', admin.token)).body as UserPage;
    expect(wildcard.items).to.deep.equal([]);
    expect(JSON.stringify(first.body)).to.not.include('password');
  });

  it('reads one user, 404 for unknown ids', async function () {
    const res = await call(servers, 'GET', `/v1/admin/users/${member.id}`, admin.token);
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.include({ id: member.id, email: member.email, disabled: false, roles: ['user'] });
    conforms('GET', '/v1/admin/users/{id}', res);
    const unknown = await call(servers, 'GET', `/v1/admin/users/${randomUUID()}`, admin.token);
    expect(unknown.status).to.equal(404);
    conforms('GET', '/v1/admin/users/{id}', unknown);
  });

  it('disables an account: its tokens stop working at once, and enabling it again does not restore them (R13)', async function () {
    const target = await signedInUser(servers, rp);
    expect((await call(servers, 'GET', '/v1/records', target.token)).status).to.equal(200);
    const disabled = await call(servers, 'PATCH', `/v1/admin/users/${target.id}`, admin.token, { disabled: true });
    expect(disabled.status, disabled.text).to.equal(200);
    expect(disabled.body).to.have.property('disabled', true);
    conforms('PATCH', '/v1/admin/users/{id}', disabled);
    const refused = await call(servers, 'GET', '/v1/records', target.token);
    expect(refused.status).to.equal(401);
    expect(refused.headers.get('WWW-Authenticate')).to.match(/error="invalid_token"/);
    // The authorization server refuses the refresh token of a disabled account too.
    expect(await oauthErrorOf(() => client.refreshTokenGrant(rp, target.refreshToken!))).to.equal('invalid_grant');
    await call(servers, 'PATCH', `/v1/admin/users/${target.id}`, admin.token, { disabled: false });
    // Disabling ended every sign-in: the old token stays refused; the user signs in again.
    expect((await call(servers, 'GET', '/v1/records', target.token)).status).to.equal(401);
    const fresh = await userTokens(servers, rp, target, 'records:read records:write');
    expect((await call(servers, 'GET', '/v1/records', fresh.access_token)).status).to.equal(200);
  });

  it('replaces roles; the change applies to the next request (cache invalidated)', async function () {
    const target = await signedInUser(servers, rp, { scopes: adminScopes });
    expect((await call(servers, 'GET', '/v1/admin/audit', target.token)).status).to.equal(403);
    const changed = await call(servers, 'PATCH', `/v1/admin/users/${target.id}`, admin.token, { roles: ['user', 'auditor'] });
    expect(changed.status).to.equal(200);
    expect(changed.body).to.have.property('roles').that.deep.equals(['auditor', 'user']);
    expect((await call(servers, 'GET', '/v1/admin/audit', target.token)).status).to.equal(200);
    const me = (await call(servers, 'GET', '/v1/me', target.token)).body as { roles: string[] };
    expect(me.roles).to.deep.equal(['auditor', 'user']);

    const events = (await call(servers, 'GET', `/v1/admin/audit?type=user.updated&user=${admin.id}`, admin.token)).body as AuditPage;
    expect(events.items[0]?.data).to.deep.equal({ user_id: target.id, roles: { from: ['user'], to: ['auditor', 'user'] } });
  });

  it('refuses unknown roles (422), self-lockout (409), unknown fields and empty patches (400), unknown users (404)', async function () {
    const cases: [string, unknown, number][] = [
      [member.id, { roles: ['wizard'] }, 422],
      [admin.id, { disabled: true }, 409],
      [admin.id, { roles: ['user'] }, 409],
      [member.id, { email: 'new@example.test' }, 400],
      [member.id, {}, 400],
      [randomUUID(), { disabled: true }, 404],
    ];
    for (const [id, body, status] of cases) {
      const res = await call(servers, 'PATCH', `/v1/admin/users/${id}`, admin.token, body);
      expect(res.status, JSON.stringify(body)).to.equal(status);
      conforms('PATCH', '/v1/admin/users/{id}', res);
    }
  });

  it('needs the admin scope AND the role permission; auditors read the audit log only', async function () {
    const adminWithoutScope = await signedInUser(servers, rp, { roles: ['admin'], scopes: 'records:read' });
    const noScope = await call(servers, 'GET', '/v1/admin/users', adminWithoutScope.token);
    expect(noScope.status).to.equal(403);
    expect(noScope.headers.get('WWW-Authenticate')).to.match(/error="insufficient_scope".*scope="admin"/);
    conforms('GET', '/v1/admin/users', noScope);

    for (const [method, path, body] of [
      ['GET', '/v1/admin/users', undefined],
      ['GET', `/v1/admin/users/${member.id}`, undefined],
      ['PATCH', `/v1/admin/users/${member.id}`, { disabled: true }],
      ['GET', '/v1/admin/audit', undefined],
    ] as const) {
      const res = await call(servers, method, path, member.token, body);
      expect(res.status, `${method} ${path}`).to.equal(403);
      expect(res.body).to.have.property('type', 'urn:portcullis:problem:forbidden');
    }
    const audit = await call(servers, 'GET', '/v1/admin/audit', auditor.token);
    expect(audit.status).to.equal(200);
    conforms('GET', '/v1/admin/audit', audit);
    expect((await call(servers, 'GET', '/v1/admin/users', auditor.token)).status).to.equal(403);
    expect((await call(servers, 'PATCH', `/v1/admin/users/${member.id}`, auditor.token, { disabled: true })).status).to.equal(403);
  });

  it('searches the audit log by user, type and time, newest first, with a cursor', async function () {
    const all = (await call(servers, 'GET', `/v1/admin/audit?user=${member.id}`, auditor.token)).body as AuditPage;
    expect(all.items.length).to.be.at.least(2);
    expect(all.items.every((e) => e.actor_id === member.id)).to.equal(true);
    const ids = all.items.map((e) => e.id);
    expect(ids).to.deep.equal([...ids].sort((a, b) => b - a));

    const logins = (await call(servers, 'GET', `/v1/admin/audit?user=${member.id}&type=login.password`, auditor.token)).body as AuditPage;
    expect(logins.items.length).to.be.at.least(1);
    expect(logins.items.every((e) => e.type === 'login.password')).to.equal(true);

    const future = new Date(Date.now() + 3_600_000).toISOString();
    const none = (await call(servers, 'GET', `/v1/admin/audit?since=${encodeURIComponent(future)}`, auditor.token)).body as AuditPage;
    expect(none.items).to.deep.equal([]);
    const until = all.items.at(-1)!.occurred_at;
    const before = (await call(servers, 'GET', `/v1/admin/audit?user=${member.id}&until=${encodeURIComponent(until)}`, auditor.token))
      .body as AuditPage;
    expect(before.items.every((e) => e.occurred_at < until)).to.equal(true);

    const one = (await call(servers, 'GET', `/v1/admin/audit?user=${member.id}&limit=1`, auditor.token)).body as AuditPage;
    const next = (await call(servers, 'GET', `/v1/admin/audit?user=${member.id}&limit=1&cursor=${one.next_cursor}`, auditor.token))
      .body as AuditPage;
    expect(next.items[0]?.id).to.equal(ids[1]);

    for (const query of ['since=yesterday', `since=${future}&until=${new Date().toISOString()}`, 'limit=1000', 'actor=x']) {
      const res = await call(servers, 'GET', `/v1/admin/audit?${query.replaceAll('+', '%2B')}`, auditor.token);
      expect(res.status, query).to.equal(400);
      conforms('GET', '/v1/admin/audit', res);
    }
  });

  it('client-credentials tokens: /v1/me answers without roles; role-guarded routes are forbidden', async function () {
    const registered = await createTestClient(servers.deps, {
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'records:read',
    });
    const machine = await client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
      execute: [client.allowInsecureRequests],
    });
    const tokens = await client.clientCredentialsGrant(machine, { scope: 'records:read', resource: servers.apiUrl });
    const me = await call(servers, 'GET', '/v1/me', tokens.access_token);
    expect(me.status, me.text).to.equal(200);
    expect(me.body).to.deep.equal({
      sub: registered.client_id,
      client_id: registered.client_id,
      scope: 'records:read',
      roles: [],
      permissions: [],
    });
    conforms('GET', '/v1/me', me);
    const records = await call(servers, 'GET', '/v1/records', tokens.access_token);
    expect(records.status).to.equal(403);
    expect(records.body).to.have.property('type', 'urn:portcullis:problem:forbidden');

    // A DPoP-bound token lacking a scope is challenged with the DPoP scheme (RFC 9449 §7.1).
    const handle = client.getDPoPHandle(machine, await client.randomDPoPKeyPair('ES256'));
    const bound = await client.clientCredentialsGrant(machine, { scope: 'records:read', resource: servers.apiUrl }, { DPoP: handle });
    const url = new URL(`${servers.apiUrl}/v1/records`);
    const challenge = await rejectionOf(() =>
      client.fetchProtectedResource(
        machine,
        bound.access_token,
        url,
        'POST',
        JSON.stringify({ type: 'note', label: 'x', data: {} }),
        new Headers({ 'Content-Type': 'application/json' }),
        { DPoP: handle },
      ),
    );
    expect(challenge).to.be.instanceOf(client.WWWAuthenticateChallengeError);
    const { response } = challenge as client.WWWAuthenticateChallengeError;
    expect(response.status).to.equal(403);
    expect(response.headers.get('WWW-Authenticate')).to.match(/^DPoP .*error="insufficient_scope".*scope="records:write"/);
  });
});
