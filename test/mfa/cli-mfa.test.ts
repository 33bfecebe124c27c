import { expect } from 'chai';
import { generate } from 'otplib';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { runNode } from '../helpers/process.ts';
import { createTestUser } from '../helpers/factories.ts';
import { testConfigEnv } from '../helpers/servers.ts';

/** Operator commands for second factors: reset a user's factors, require MFA for a role. */
describe('portcullis CLI: MFA', function () {
  this.timeout(30_000);
  const cli = (args: string[]) => runNode(['src/cli.ts', ...args], testConfigEnv({ storage: 'postgres' }));
  let deps: Deps;

  before(async function () {
    deps = await createDeps(loadConfig(testConfigEnv({ storage: 'postgres' })));
  });
  after(async function () {
    await deps.close();
  });

  it('users reset-mfa removes the factors and recovery codes and is audited', async function () {
    const user = await createTestUser(deps);
    const enrollment = await deps.mfa.totp.begin(user.id, user.email, 'test');
    if (!enrollment) throw new Error('no enrollment');
    await deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test');
    await deps.mfa.recovery.regenerate(user.id);
    const result = await cli(['users', 'reset-mfa', '--email', user.email]);
    expect(result.code, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout)).to.deep.include({ id: user.id, removed: { totp: true, passkeys: 0 } });
    expect(await deps.mfa.enrolled(user.id)).to.deep.equal([]);
    expect(await deps.mfa.recovery.remaining(user.id)).to.equal(0);
    expect(await deps.knex('audit_events').where({ actor_id: user.id, type: 'mfa.reset' })).to.have.length(1);
    const unknown = await cli(['users', 'reset-mfa', '--email', 'nobody@example.test']);
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr.trim()).to.equal('error: no user with email nobody@example.test');
  });

  it('roles require-mfa turns the requirement on and off', async function () {
    const user = await createTestUser(deps, { roles: ['auditor'] });
    expect(await deps.mfa.roleRequiresMfa(user.id)).to.equal(false);
    const on = await cli(['roles', 'require-mfa', 'auditor', 'on']);
    expect(on.code, on.stderr).to.equal(0);
    expect(JSON.parse(on.stdout)).to.deep.equal({ role: 'auditor', requires_mfa: true });
    expect(await deps.mfa.roleRequiresMfa(user.id)).to.equal(true);
    expect((await cli(['roles', 'require-mfa', 'auditor', 'off'])).code).to.equal(0);
    expect(await deps.mfa.roleRequiresMfa(user.id)).to.equal(false);
    const wizard = await cli(['roles', 'require-mfa', 'wizard', 'on']);
    expect(wizard.code).to.equal(1);
    expect(wizard.stderr.trim()).to.equal('error: unknown role: wizard');
  });

  it('admins require MFA by default', async function () {
    const admin = await createTestUser(deps, { roles: ['admin'] });
    expect(await deps.mfa.roleRequiresMfa(admin.id)).to.equal(true);
  });
});
