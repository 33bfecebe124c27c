import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { simpleParser } from 'mailparser';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { enabledMailFeatures, mailProblems } from '../../src/config/mail-checks.ts';
import { ProductionConfigError, productionSettingProblems, requireMailTransport } from '../../src/config/production-checks.ts';
import { createAuditService } from '../../src/services/audit.ts';
import { MailUnavailableError } from '../../src/services/mail.ts';
import { createMail } from '../../src/services/mail-setup.ts';
import { describeSendError, smtpOptions } from '../../src/services/mail-transport.ts';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { createAuditEventStore } from '../../src/store/audit-events.ts';
import { createOutboxStore } from '../../src/store/outbox.ts';
import { uniqueEmail } from '../helpers/factories.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { testEnv } from '../setup.ts';

const key = () => randomBytes(32).toString('base64');
/** A production configuration that passes every other check. */
const productionEnv = {
  NODE_ENV: 'production',
  ISSUER: 'https://id.example.test',
  DATABASE_URL: 'postgres://db.internal/portcullis',
  MASTER_KEY: key(),
  VAULT_KEY: key(),
  AUDIT_KEY: key(),
};

/** Where mail goes without MAIL_URL (issue 12): files in development, nowhere (and refused) in production. */
describe('issue 12 mail transports by environment', function () {
  this.timeout(30_000);
  let dataDir: string;
  let knex: Knex;

  function mailIn(env: Record<string, string>, lines: string[] = []) {
    const config = loadConfig({ ...testConfigEnv({ storage: 'postgres' }), DATA_DIR: dataDir, ...env });
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const audit = createAuditService({ store: createAuditEventStore(knex, Buffer.from(testEnv.auditKey, 'base64')), logger });
    return createMail({ config, outbox: createOutboxStore(knex), box: createMasterBox(randomBytes(32)), audit, logger });
  }

  before(function () {
    knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 2 } });
  });
  beforeEach(function () {
    dataDir = mkdtempSync(join(tmpdir(), 'portcullis-mail-dev-'));
  });
  afterEach(function () {
    rmSync(dataDir, { recursive: true, force: true });
  });
  after(async function () {
    await knex.destroy();
  });

  it('in development without MAIL_URL each mail becomes an .eml file in DATA_DIR/outbox (owner only) and its link is logged', async function () {
    const lines: string[] = [];
    const mail = mailIn({ NODE_ENV: 'development', ISSUER: 'http://localhost:3000' }, lines);
    try {
      expect(mail.transport).to.equal('files');
      const to = uniqueEmail('dev');
      const { id } = await mail.enqueue(undefined, { to, template: 'test', data: { sentBy: 'dev', links: { account: '/account' } } });
      // Only this mail: the outbox may hold other suites' mail, which this pass would also write.
      while ((await knex('outbox').where({ id, status: 'pending' }).first()) !== undefined) await mail.deliverDue(50);
      const files = readdirSync(join(dataDir, 'outbox')).filter((name) => name.endsWith(`-${id}.eml`));
      expect(files).to.have.length(1);
      const file = join(dataDir, 'outbox', files[0]!);
      expect(statSync(file).mode & 0o777).to.equal(0o600);
      const parsed = await simpleParser(readFileSync(file));
      expect(parsed.subject).to.equal('Portcullis test message');
      expect(parsed.text).to.include('http://localhost:3000/account');
      expect(parsed.html).to.include('href="http://localhost:3000/account"');
      const logged = lines.map((line) => JSON.parse(line) as { msg: string; link?: string; file?: string }).find((l) => l.file === file);
      expect(logged?.link).to.equal('http://localhost:3000/account');
    } finally {
      mail.close();
    }
  });

  it('in production without MAIL_URL nothing is written anywhere: queueing is refused and nothing is sent', async function () {
    const lines: string[] = [];
    const mail = mailIn({ ...productionEnv, DATABASE_URL: testEnv.databaseUrl, MAIL_FROM: 'ID <no-reply@example.test>' }, lines);
    expect(mail.transport).to.equal('none');
    await mail
      .enqueue(undefined, { to: uniqueEmail('prod'), template: 'test', data: { sentBy: 'x', links: { account: '/account' } } })
      .then(
        () => expect.fail('queued without a transport'),
        (error: unknown) => expect(error).to.be.instanceOf(MailUnavailableError),
      );
    expect((await mail.deliverDue()).claimed).to.equal(0);
    expect(() => readdirSync(join(dataDir, 'outbox'))).to.throw(/ENOENT/);
    expect(lines).to.deep.equal([]);
  });

  it('production refuses a feature that needs mail without MAIL_URL, or with the default localhost sender (requireMailTransport)', function () {
    const bare = loadConfig(productionEnv);
    expect(() => requireMailTransport(bare, 'password reset')).to.throw(
      ProductionConfigError,
      /MAIL_URL \(or MAIL_URL_FILE\) must be set: password reset sends mail/,
    );
    const defaultSender = loadConfig({ ...productionEnv, MAIL_URL: 'smtps://u:p@mail.example.test' });
    expect(() => requireMailTransport(defaultSender, 'password reset')).to.throw(
      ProductionConfigError,
      /MAIL_FROM must be an address of your domain/,
    );
    const ready = loadConfig({ ...productionEnv, MAIL_URL: 'smtps://u:p@mail.example.test', MAIL_FROM: 'ID <no-reply@example.test>' });
    expect(() => requireMailTransport(ready, 'password reset')).to.not.throw();
    // Outside production mail without MAIL_URL goes to DATA_DIR/outbox: nothing to refuse.
    expect(() => requireMailTransport(loadConfig({}), 'password reset')).to.not.throw();
  });

  it('the production checks list the mail problems of every enabled feature that sends mail, and none when no feature needs mail', function () {
    const bare = loadConfig(productionEnv);
    const features = [
      { name: 'password reset', enabled: () => true },
      { name: 'self-registration', enabled: () => true },
      { name: 'invitations', enabled: () => false },
    ];
    const problems = mailProblems(bare, enabledMailFeatures(bare, features));
    expect(problems).to.have.length(2);
    expect(problems[0]).to.include('password reset, self-registration send mail');
    expect(problems.join(' ')).to.not.include('invitations');
    expect(mailProblems(bare, enabledMailFeatures(bare, []))).to.deep.equal([]);
    // What main.ts runs: no feature of this release sends mail yet, so MAIL_URL is not required.
    expect(productionSettingProblems(bare, {}, ['auth', 'api'])).to.deep.equal([]);
  });

  it('smtp:// to another machine must upgrade to TLS in production; smtps://, loopback and development are left as configured', function () {
    expect(smtpOptions('smtp://u:p@mail.example.test:587', 'production')).to.include({ requireTLS: true });
    expect(smtpOptions('smtps://u:p@mail.example.test', 'production')).to.not.have.property('requireTLS');
    expect(smtpOptions('smtp://127.0.0.1:25', 'production')).to.not.have.property('requireTLS');
    expect(smtpOptions('smtp://localhost:25', 'production')).to.not.have.property('requireTLS');
    expect(smtpOptions('smtp://mail.example.test:587', 'development')).to.not.have.property('requireTLS');
  });

  it('keeps only error codes of a failed send, never the server’s text (it may quote the address)', function () {
    const error = Object.assign(new Error("Can't send mail - all recipients were rejected: 550 <alice@example.test>: no such user"), {
      code: 'EENVELOPE',
      responseCode: 550,
      command: 'RCPT TO',
      response: '550 <alice@example.test>: no such user',
    });
    expect(describeSendError(error)).to.deep.equal({ summary: 'EENVELOPE 550 RCPT TO', permanent: true, serverUnreachable: false });
    expect(describeSendError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET', command: 'CONN' }))).to.deep.equal({
      summary: 'ESOCKET CONN',
      permanent: false,
      serverUnreachable: true,
    });
    expect(describeSendError(Object.assign(new Error('x'), { code: 'alice@example.test' })).summary).to.equal('ERROR');
    expect(describeSendError('nope').summary).to.equal('ERROR');
  });
});
