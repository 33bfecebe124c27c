import { expect } from 'chai';
import { runNode } from './helpers/process.ts';
import { testConfigEnv } from './helpers/servers.ts';
import { uniqueEmail } from './helpers/factories.ts';

/** The `portcullis` CLI as an operator runs it: same config as the server, JSON out, one-line errors. */
describe('portcullis CLI', function () {
  // Each test runs the CLI a few times, a Node process loading the whole app: slower with other files running beside it.
  this.timeout(60_000);
  const cli = (args: string[], input?: string) => runNode(['src/cli.ts', ...args], testConfigEnv({ storage: 'postgres' }), input);

  it('migrate reports nothing left to apply on a current database', async function () {
    const result = await cli(['migrate']);
    expect(result.code, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.deep.equal({ applied: [] });
  });

  it('users create prints the new account as JSON, with roles', async function () {
    const email = uniqueEmail('cli');
    const result = await cli(
      ['users', 'create', '--email', email, '--password-stdin', '--name', 'Grace', '--role', 'admin', '--role', 'user'],
      'correct horse battery staple\n',
    );
    expect(result.code, result.stderr).to.equal(0);
    const out = JSON.parse(result.stdout) as { id: string; email: string; roles: string[] };
    expect(out.id).to.match(/^[0-9a-f-]{36}$/);
    expect(out).to.deep.include({ email, email_verified: false, roles: ['admin', 'user'] });
  });

  it('users create --email-verified: the administrator vouches for the address (email_verified true); without it, false', async function () {
    const email = uniqueEmail('vouched');
    const result = await cli(
      ['users', 'create', '--email', email, '--password-stdin', '--email-verified'],
      'correct horse battery staple\n',
    );
    expect(result.code, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.deep.include({ email, email_verified: true, roles: ['user'] });
  });

  it('users verify-email vouches for one account’s address, or every account’s with --all', async function () {
    const email = uniqueEmail('verify');
    const created = JSON.parse(
      (await cli(['users', 'create', '--email', email, '--password-stdin'], 'correct horse battery staple\n')).stdout,
    ) as {
      id: string;
    };
    const one = await cli(['users', 'verify-email', '--email', email.toUpperCase()]);
    expect(one.code, one.stderr).to.equal(0);
    expect(JSON.parse(one.stdout)).to.deep.equal({ verified: 1, id: created.id });
    expect(JSON.parse((await cli(['users', 'verify-email', '--email', email])).stdout)).to.deep.equal({ verified: 0, id: created.id });
    const other = uniqueEmail('verify-all');
    await cli(['users', 'create', '--email', other, '--password-stdin'], 'correct horse battery staple\n');
    const all = await cli(['users', 'verify-email', '--all']);
    expect(all.code, all.stderr).to.equal(0);
    expect((JSON.parse(all.stdout) as { verified: number }).verified).to.be.at.least(1);
    const neither = await cli(['users', 'verify-email']);
    expect(neither.code).to.equal(1);
    expect(neither.stderr.trim()).to.equal('error: give either --email or --all');
    const unknown = await cli(['users', 'verify-email', '--email', uniqueEmail('nobody')]);
    expect(unknown.code).to.equal(1);
  });

  it('refuses a duplicate email regardless of case, a short password, and an unknown role', async function () {
    const email = uniqueEmail('dup');
    expect((await cli(['users', 'create', '--email', email, '--password-stdin'], 'first password ok')).code).to.equal(0);
    const dup = await cli(['users', 'create', '--email', email.toUpperCase(), '--password-stdin'], 'second password ok');
    expect(dup.code).to.equal(1);
    expect(dup.stderr.trim()).to.equal('error: a user with this email already exists');
    const short = await cli(['users', 'create', '--email', uniqueEmail(), '--password-stdin'], 'short');
    expect(short.code).to.equal(1);
    expect(short.stderr).to.include('too short');
    const role = await cli(['users', 'create', '--email', uniqueEmail(), '--password-stdin', '--role', 'wizard'], 'long enough password');
    expect(role.code).to.equal(1);
    expect(role.stderr.trim()).to.equal('error: unknown role: wizard');
  });

  it('clients create prints an RFC 7591 response and clients list never shows secrets', async function () {
    const result = await cli([
      'clients',
      'create',
      '--json',
      JSON.stringify({ client_name: 'CLI App', redirect_uris: ['https://app.example.test/cb'] }),
    ]);
    expect(result.code, result.stderr).to.equal(0);
    const registered = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(registered).to.include({
      client_name: 'CLI App',
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret_expires_at: 0,
    });
    expect(registered.client_id).to.be.a('string');
    expect(registered.client_secret).to.be.a('string').with.length.above(40);
    expect(registered.client_id_issued_at).to.be.a('number');
    const listed = await cli(['clients', 'list']);
    expect(listed.code, listed.stderr).to.equal(0);
    expect(listed.stdout).to.include(String(registered.client_id));
    expect(listed.stdout).to.not.include(String(registered.client_secret));
  });

  it('clients create rejects bad metadata with an RFC 7591 error on stderr', async function () {
    const bad = await cli(['clients', 'create', '--json', JSON.stringify({ redirect_uris: ['javascript:alert(1)'] })]);
    expect(bad.code).to.equal(1);
    expect(JSON.parse(bad.stderr)).to.have.property('error', 'invalid_redirect_uri');
    const notJson = await cli(['clients', 'create', '--json', '{nope']);
    expect(notJson.code).to.equal(1);
    expect(notJson.stderr.trim()).to.equal('error: --json is not valid JSON');
    const assigned = await cli([
      'clients',
      'create',
      '--json',
      JSON.stringify({ client_id: 'mine', redirect_uris: ['https://a.example.test/cb'] }),
    ]);
    expect(JSON.parse(assigned.stderr)).to.deep.equal({
      error: 'invalid_client_metadata',
      error_description: 'client_id is assigned by the server',
    });
  });

  it('R4 clients create without scope gets the default set (no admin, no account scopes); admin only when named', async function () {
    const plain = await cli([
      'clients',
      'create',
      '--json',
      JSON.stringify({ client_name: 'No scope', redirect_uris: ['https://app.example.test/cb'] }),
    ]);
    expect(plain.code, plain.stderr).to.equal(0);
    expect((JSON.parse(plain.stdout) as { scope: string }).scope).to.equal(
      'openid offline_access profile email records:read records:write',
    );
    const console = await cli([
      'clients',
      'create',
      '--json',
      JSON.stringify({
        client_name: 'Admin console',
        redirect_uris: ['https://admin.example.test/cb'],
        scope: 'openid admin account:erase',
      }),
    ]);
    expect(console.code, console.stderr).to.equal(0);
    expect((JSON.parse(console.stdout) as { scope: string }).scope).to.equal('openid admin account:erase');
  });

  it('R4 iat create --allow-scope records the account scopes its registrations may hold; admin is refused', async function () {
    const created = await cli(['iat', 'create', '--allow-scope', 'account:export', '--allow-scope', 'account:erase', '--max-uses', '1']);
    expect(created.code, created.stderr).to.equal(0);
    expect(JSON.parse(created.stdout)).to.include({ allowed_scope: 'account:export account:erase' });
    const refused = await cli(['iat', 'create', '--allow-scope', 'account:erase', '--allow-scope', 'admin']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(
      /--allow-scope must be one of account:export, account:erase \(admin is granted only by `clients create`\)/,
    );
  });

  it('stops with one clear line per configuration problem', async function () {
    const result = await runNode(['src/cli.ts', 'migrate'], {
      ...testConfigEnv({ storage: 'postgres' }),
      AUTH_PORT: 'eighty',
      LOG_LEVEL: 'loud',
    });
    expect(result.code).to.equal(1);
    expect(result.stderr.trim().split('\n')).to.deep.equal([
      'config error: AUTH_PORT: must be integer',
      'config error: LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent',
    ]);
  });
});
