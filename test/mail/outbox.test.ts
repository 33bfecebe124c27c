import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { createAuditService } from '../../src/services/audit.ts';
import { MailRecipientError, type MailService } from '../../src/services/mail.ts';
import { createMail } from '../../src/services/mail-setup.ts';
import { MailTemplateError } from '../../src/services/mail-templates.ts';
import { startMailWorker } from '../../src/services/mail-worker.ts';
import { SEAL_CONTEXT } from '../../src/shared/crypto-contexts.ts';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { createAuditEventStore } from '../../src/store/audit-events.ts';
import { exportTables } from '../../src/store/backup.ts';
import { createOutboxStore } from '../../src/store/outbox.ts';
import { uniqueEmail } from '../helpers/factories.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp.ts';
import { testEnv } from '../setup.ts';
import { consistently, eventually, withTimeout } from '../helpers/wait.ts';

const ISSUER = 'https://id.example.test';
const FROM = 'Example Sign-in <no-reply@example.test>';

type OutboxRow = {
  id: string;
  template: string;
  status: string;
  attempts: number;
  payload_sealed: string | null;
  next_attempt_at: Date;
  locked_until: Date | null;
  last_error: string | null;
};

/** Polls `check` until it returns a value (test/helpers/wait.ts `eventually`, undefined meaning "not yet"). */
function whenDefined<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
  return eventually(
    async () => {
      const value = await check();
      if (value === undefined) throw new Error(`no ${what} yet`);
      return value;
    },
    { timeoutMs, intervalMs: 50, message: what },
  );
}

/**
 * The outbox (issue 12) against real Postgres and a real SMTP server in process: the mail service
 * as src/deps.ts builds it (createMail), sealed under a master key, auditing into the real chain.
 */
describe('issue 12 mail outbox', function () {
  this.timeout(30_000);
  let smtp: TestSmtpServer;
  const pools: Knex[] = [];
  const services: MailService[] = [];
  const logLines: string[] = [];

  function mailFor(env: Record<string, string> = {}) {
    const config = loadConfig({
      ...testConfigEnv({ storage: 'postgres' }),
      ISSUER: ISSUER,
      MAIL_URL: smtp.url,
      MAIL_FROM: FROM,
      MAIL_RETRY_BASE_SECONDS: '1',
      ...env,
    });
    const knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 4 } });
    pools.push(knex);
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
    const audit = createAuditService({ store: createAuditEventStore(knex, Buffer.from(testEnv.auditKey, 'base64')), logger });
    const box = createMasterBox(Buffer.from(testEnv.masterKey, 'base64'));
    const mail = createMail({ config, outbox: createOutboxStore(knex), box, audit, logger });
    services.push(mail);
    return { mail, knex, box, config, outbox: createOutboxStore(knex) };
  }

  const row = (knex: Knex, id: string) => knex<OutboxRow>('outbox').where({ id }).first() as Promise<OutboxRow | undefined>;
  /** The rows, in the order of `ids`, once every one of them passes `ready`. */
  const rowsOnce = (knex: Knex, ids: string[], ready: (r: OutboxRow) => boolean) =>
    whenDefined(async () => {
      const rows = await Promise.all(ids.map((id) => row(knex, id)));
      return rows.every((r): r is OutboxRow => r !== undefined && ready(r)) ? rows : undefined;
    });
  const testMail = (to: string, sentBy = 'the outbox suite') => ({
    to,
    template: 'test' as const,
    data: { sentBy, links: { account: '/account' as const } },
  });

  before(async function () {
    smtp = await startSmtpServer();
  });

  afterEach(async function () {
    if (!smtp.listening) await smtp.start();
  });

  after(async function () {
    for (const mail of services) mail.close();
    await Promise.all(pools.map((knex) => knex.destroy()));
    await smtp.close();
  });

  it('a queued mail arrives by SMTP with both parts, From, To, the subject and a link on ISSUER; its content leaves the outbox', async function () {
    const { mail, knex } = mailFor();
    const to = uniqueEmail('arrives');
    const { id } = await mail.enqueue(undefined, testMail(to));
    expect((await row(knex, id))?.status).to.equal('pending');
    await mail.deliverDue();
    const received = await smtp.waitForMailTo(to);
    expect(received.envelope.to).to.deep.equal([to]);
    expect(received.from).to.equal(`"Example Sign-in" <no-reply@example.test>`);
    expect(received.to).to.equal(to);
    expect(received.subject).to.equal('Portcullis test message');
    expect(received.text).to.include('sent by the outbox suite');
    expect(received.link).to.equal(`${ISSUER}/account`);
    expect(received.html).to.include(`href="${ISSUER}/account"`);
    expect(received.html).to.match(/^<!DOCTYPE html>/);
    expect(received.parsed.headers.get('auto-submitted')).to.equal('auto-generated');
    const sent = await row(knex, id);
    expect(sent).to.include({ status: 'sent', attempts: 1, payload_sealed: null, last_error: null });
  });

  it('a mail queued in a transaction exists only if it commits, and the worker is woken after the commit', async function () {
    const { mail, knex } = mailFor();
    let woken = 0;
    const unsubscribe = mail.onEnqueued(() => void (woken += 1));
    try {
      let rolledBack = '';
      await knex
        .transaction(async (trx) => {
          rolledBack = (await mail.enqueue(trx, testMail(uniqueEmail('rollback')))).id;
          throw new Error('the flow failed half-way');
        })
        .catch(() => undefined);
      expect(await row(knex, rolledBack)).to.equal(undefined);
      await consistently(() => expect(woken, 'woken for a rolled-back mail').to.equal(0), { forMs: 20 });

      let committed = '';
      await knex.transaction(async (trx) => {
        committed = (await mail.enqueue(trx, testMail(uniqueEmail('commit')))).id;
        await consistently(() => expect(woken, 'not woken before the commit').to.equal(0), { forMs: 20 });
      });
      await whenDefined(() => Promise.resolve(woken === 1 ? true : undefined), 2000, 'the wake-up');
      expect((await row(knex, committed))?.status).to.equal('pending');
      await mail.deliverDue();
    } finally {
      unsubscribe();
    }
  });

  it('while the SMTP server is down, mails wait (attempts rising, back-off doubling) and go out once it is back; queueing never waits for it', async function () {
    const { mail, knex } = mailFor();
    await smtp.stop();
    const to = [uniqueEmail('outage-a'), uniqueEmail('outage-b')];
    const started = Date.now();
    const ids = [(await mail.enqueue(undefined, testMail(to[0]!))).id, (await mail.enqueue(undefined, testMail(to[1]!))).id];
    expect(Date.now() - started, 'queueing is a database write, whatever the mail server does').to.be.below(1000);

    const worker = startMailWorker(mail, pino({ level: 'silent' }), { pollMs: 100 });
    try {
      const firstRetry = await rowsOnce(knex, ids, (r) => r.attempts >= 1 && r.locked_until === null);
      const secondRetry = await rowsOnce(knex, ids, (r) => r.attempts >= 2 && r.locked_until === null);
      for (const [index, later] of secondRetry.entries()) {
        const earlier = firstRetry[index]!;
        expect(later.status).to.equal('pending');
        expect(later.payload_sealed).to.be.a('string');
        expect(later.last_error).to.match(/^E[A-Z]+/);
        // The wait after the 2nd attempt (2 s) is twice the wait after the 1st (1 s).
        expect(later.next_attempt_at.getTime() - earlier.next_attempt_at.getTime()).to.be.at.least(1900);
      }
      expect(smtp.received.filter((m) => to.includes(m.envelope.to[0]!))).to.have.length(0);

      await smtp.start();
      for (const address of to) await smtp.waitForMailTo(address, 15_000);
      const sent = await rowsOnce(knex, ids, (r) => r.status === 'sent');
      expect(sent.every((r) => r.payload_sealed === null)).to.equal(true);
    } finally {
      await worker.stop();
    }
  });

  it('a row another worker is claiming is skipped, never waited for (SKIP LOCKED), and a claimed row is leased to its worker', async function () {
    const { mail, knex, outbox } = mailFor();
    const locked = (await mail.enqueue(undefined, testMail(uniqueEmail('locked')))).id;
    const free = (await mail.enqueue(undefined, testMail(uniqueEmail('free')))).id;
    const other = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 1 } });
    try {
      const trx = await other.transaction();
      try {
        await trx('outbox').where({ id: locked }).forUpdate().first();
        const claimed = await withTimeout(outbox.claim(50, 60), 3000, 'the claim waited for the locked row');
        const claimedIds = claimed.map((r) => r.id);
        expect(claimedIds).to.include(free);
        expect(claimedIds).to.not.include(locked);
        // The lease: no other claim takes the claimed rows while it runs.
        expect((await outbox.claim(50, 60)).map((r) => r.id)).to.not.include(free);
      } finally {
        await trx.rollback();
      }
      expect((await outbox.claim(50, 60)).map((r) => r.id)).to.include(locked);
    } finally {
      await other.destroy();
      await knex('outbox').whereIn('id', [locked, free]).delete();
    }
  });

  it('two workers sending at once deliver every mail exactly once', async function () {
    const a = mailFor();
    const b = mailFor();
    const to = Array.from({ length: 16 }, (_, i) => uniqueEmail(`pair${i}`));
    for (const address of to) await a.mail.enqueue(undefined, testMail(address));
    const drain = async (mail: MailService) => {
      let total = 0;
      for (;;) {
        const report = await mail.deliverDue(3);
        total += report.sent;
        if (report.claimed === 0) return total;
      }
    };
    const [sentByA, sentByB] = await Promise.all([drain(a.mail), drain(b.mail)]);
    expect(sentByA + sentByB).to.equal(16);
    for (const address of to) expect(smtp.mailsTo(address), address).to.have.length(1);
  });

  it('the recipient, subject and bodies are sealed at rest, bound to their row', async function () {
    const { mail, knex, box } = mailFor();
    const to = uniqueEmail('sealed');
    const marker = `marker-${randomBytes(6).toString('hex')}`;
    const { id } = await mail.enqueue(undefined, testMail(to, marker));
    const stored = await knex.raw<{ rows: { row: string }[] }>(`SELECT to_jsonb(o)::text AS row FROM outbox o WHERE id = ?`, [id]);
    const text = stored.rows[0]!.row;
    for (const secret of [to, to.split('@')[0]!, marker, 'Portcullis test message', `${ISSUER}/account`])
      expect(text).to.not.include(secret);
    const sealed = (await row(knex, id))!.payload_sealed!;
    expect(sealed).to.match(/^v1\./);
    expect(JSON.parse(box.open(sealed, SEAL_CONTEXT.outboxPayload(id)).toString())).to.include({ to });
    const otherId = (await mail.enqueue(undefined, testMail(uniqueEmail('other')))).id;
    expect(() => box.open(sealed, SEAL_CONTEXT.outboxPayload(otherId))).to.throw(/authentication failed/);
    await knex('outbox').whereIn('id', [id, otherId]).delete();
  });

  it('an account’s queued mail goes with the account, and a backup carries no mail', async function () {
    const { mail, knex } = mailFor();
    const email = uniqueEmail('erased');
    const [user] = await knex('users').insert({ email, email_normalized: email }).returning<{ id: string }[]>('id');
    const { id } = await mail.enqueue(undefined, { ...testMail(email), userId: user!.id });
    const backup = await exportTables(knex);
    expect(backup.tables.find((table) => table.name === 'outbox')).to.deep.equal({ name: 'outbox', rows: [] });
    await knex('users').where({ id: user!.id }).delete();
    expect(await row(knex, id)).to.equal(undefined);
  });

  it('a recipient the server refuses (5xx) fails at once: audited, and neither the outbox nor the log nor the audit names the address', async function () {
    const { mail, knex } = mailFor();
    const to = uniqueEmail('refused');
    smtp.rejectRecipient(to);
    logLines.length = 0;
    const { id } = await mail.enqueue(undefined, testMail(to));
    const report = await mail.deliverDue(50);
    expect(report.failed).to.be.at.least(1);
    const failed = (await row(knex, id))!;
    expect(failed).to.include({ status: 'failed', attempts: 1, last_error: 'EENVELOPE 550 RCPT TO' });
    const event = await knex('audit_events')
      .where({ type: 'mail.failed' })
      .whereRaw(`data->>'outbox_id' = ?`, [id])
      .first<{ data: object } | undefined>();
    expect(event?.data).to.deep.equal({ outbox_id: id, template: 'test', attempts: 1, error: 'EENVELOPE 550 RCPT TO' });
    expect(JSON.stringify(event)).to.not.include(to);
    expect(logLines.join('\n')).to.not.include(to.split('@')[0]!);
    expect(logLines.join('\n')).to.include(id);
  });

  it('a mail is given up after MAIL_MAX_ATTEMPTS (failed, audited) and `retryFailed` sends it once the server is back', async function () {
    const { mail, knex } = mailFor({ MAIL_MAX_ATTEMPTS: '2' });
    await smtp.stop();
    const to = uniqueEmail('given-up');
    const { id } = await mail.enqueue(undefined, testMail(to));
    const worker = startMailWorker(mail, pino({ level: 'silent' }), { pollMs: 100 });
    try {
      const failed = await whenDefined(async () => {
        const r = await row(knex, id);
        return r?.status === 'failed' ? r : undefined;
      });
      expect(failed.attempts).to.equal(2);
      expect(failed.last_error).to.match(/^E[A-Z]+/);
      await whenDefined(
        () => knex('audit_events').where({ type: 'mail.failed' }).whereRaw(`data->>'outbox_id' = ?`, [id]).first(),
        5000,
        'the mail.failed audit event',
      );
      expect((await mail.status()).recent_failures.map((f) => f.id)).to.include(id);

      await smtp.start();
      expect(await mail.retryFailed([id])).to.equal(1);
      await smtp.waitForMailTo(to);
      const sent = await whenDefined(async () => {
        const r = await row(knex, id);
        return r?.status === 'sent' ? r : undefined;
      });
      expect(sent.attempts).to.equal(1);
    } finally {
      await worker.stop();
    }
  });

  it('prune deletes sent and failed rows past MAIL_OUTBOX_RETENTION_DAYS, and nothing pending or recent', async function () {
    const { mail, knex } = mailFor({ MAIL_OUTBOX_RETENTION_DAYS: '7' });
    const ids: Record<string, string> = {};
    for (const name of ['oldSent', 'newSent', 'oldFailed', 'oldPending'])
      ids[name] = (await mail.enqueue(undefined, testMail(uniqueEmail(name)))).id;
    const past = (days: number) => knex.raw(`now() - make_interval(days => ?)`, [days]);
    await knex('outbox')
      .where({ id: ids.oldSent })
      .update({ status: 'sent', payload_sealed: null, finished_at: past(8) });
    await knex('outbox')
      .where({ id: ids.newSent })
      .update({ status: 'sent', payload_sealed: null, finished_at: past(6) });
    await knex('outbox')
      .where({ id: ids.oldFailed })
      .update({ status: 'failed', finished_at: past(8) });
    await knex('outbox')
      .where({ id: ids.oldPending })
      .update({ created_at: past(30), next_attempt_at: knex.raw("now() + interval '1 day'") });
    expect(await mail.prune()).to.be.at.least(2);
    const left = (await knex('outbox').whereIn('id', Object.values(ids)).select<{ id: string }[]>('id')).map((r) => r.id);
    expect(left).to.have.members([ids.newSent, ids.oldPending]);
    await knex('outbox').whereIn('id', left).delete();
  });

  it('refuses a recipient that is not one plain address (CR/LF, lists, names) and queues nothing', async function () {
    const { mail, knex } = mailFor();
    const before = Number((await knex('outbox').count<{ count: string }[]>({ count: '*' }))[0]!.count);
    for (const to of [
      'victim@example.test\r\nBcc: attacker@example.test',
      'victim@example.test\nBcc: attacker@example.test',
      'victim@example.test, attacker@example.test',
      'Victim <victim@example.test>',
      'victim@example.test>',
      'no-at-sign',
      '@example.test',
      'victim@',
    ]) {
      await mail.enqueue(undefined, testMail(to)).then(
        () => expect.fail(`queued ${JSON.stringify(to)}`),
        (error: unknown) => expect(error, JSON.stringify(to)).to.be.instanceOf(MailRecipientError),
      );
    }
    expect(Number((await knex('outbox').count<{ count: string }[]>({ count: '*' }))[0]!.count)).to.equal(before);
  });

  it('builds links on ISSUER only: a protocol-relative or absolute link is refused', async function () {
    const { mail } = mailFor();
    for (const path of ['//evil.example/reset', '/\\evil.example/reset', 'https://evil.example/reset', '/reset\r\nX: y']) {
      await mail
        .enqueue(undefined, { to: uniqueEmail('link'), template: 'test', data: { sentBy: 'x', links: { account: path as '/x' } } })
        .then(
          () => expect.fail(`queued a link to ${JSON.stringify(path)}`),
          (error: unknown) => expect(error, path).to.be.instanceOf(MailTemplateError),
        );
    }
  });

  it('takes MAIL_URL from MAIL_URL_FILE, with the credentials an SMTP server that requires AUTH checks', async function () {
    const secured = await startSmtpServer({ auth: { user: 'portcullis', pass: 'p@ss word' } });
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-mail-'));
    try {
      const file = join(dir, 'mail_url');
      writeFileSync(file, `${secured.url}\n`, { mode: 0o600 });
      const { mail, knex } = mailFor({ MAIL_URL: '', MAIL_URL_FILE: file });
      const to = uniqueEmail('auth');
      await mail.enqueue(undefined, testMail(to));
      await mail.deliverDue(50);
      expect((await secured.waitForMailTo(to)).subject).to.equal('Portcullis test message');

      const wrong = mailFor({ MAIL_URL: `smtp://portcullis:wrong@127.0.0.1:${secured.port}` });
      const { id } = await wrong.mail.enqueue(undefined, testMail(uniqueEmail('wrong-password')));
      await wrong.mail.deliverDue(50);
      expect((await row(knex, id))?.last_error).to.equal('EAUTH 535 AUTH PLAIN');
      await knex('outbox').where({ id }).delete();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await secured.close();
    }
  });
});
