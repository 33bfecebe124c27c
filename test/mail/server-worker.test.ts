import { expect } from 'chai';
import { uniqueEmail } from '../helpers/factories.ts';
import { runNode } from '../helpers/process.ts';
import { startTestServers, testConfigEnv, type TestServers } from '../helpers/servers.ts';
import { startSmtpServer, type TestSmtpServer } from '../helpers/smtp.ts';
import { consistently } from '../helpers/wait.ts';

const testMail = (to: string) => ({
  to,
  template: 'test' as const,
  data: { sentBy: 'the server suite', links: { account: '/account' as const } },
});

/** The outbox's worker runs inside the auth server (issue 12), and the CLI shows the outbox. */
describe('issue 12 mail worker in the auth server, and `portcullis mail`', function () {
  this.timeout(60_000);
  let smtp: TestSmtpServer;
  let servers: TestServers;

  before(async function () {
    smtp = await startSmtpServer();
    servers = await startTestServers({ env: { MAIL_URL: smtp.url, MAIL_FROM: 'Portcullis <no-reply@example.test>' } });
  });

  after(async function () {
    await servers.stop();
    await smtp.close();
  });

  it('sends a queued mail at once (woken by the enqueue, not at the next poll), with links on the server’s ISSUER', async function () {
    const to = uniqueEmail('server');
    const started = Date.now();
    await servers.deps.mail.enqueue(undefined, testMail(to));
    const received = await smtp.waitForMailTo(to, 10_000);
    // The poll interval is 5 s; the wake-up sends well before it.
    expect(Date.now() - started).to.be.below(3000);
    expect(received.link).to.equal(`${servers.issuer}/account`);
  });

  it('`portcullis mail status` counts the outbox without naming anyone, and `mail test` sends through MAIL_URL', async function () {
    const env = { ...testConfigEnv({ storage: 'postgres' }), MAIL_URL: smtp.url, MAIL_FROM: 'Portcullis <no-reply@example.test>' };
    const status = await runNode(['src/cli.ts', 'mail', 'status'], env);
    expect(status.code, status.stderr).to.equal(0);
    const counts = JSON.parse(status.stdout) as Record<string, unknown>;
    expect(counts).to.include({ transport: 'smtp' });
    expect(counts.sent).to.be.a('number').and.at.least(1);
    for (const field of ['pending', 'sending', 'retrying', 'failed']) expect(counts[field], field).to.be.a('number');
    expect(status.stdout).to.not.include('@example.test');

    const to = uniqueEmail('cli-test');
    const test = await runNode(['src/cli.ts', 'mail', 'test', '--to', to], env);
    expect(test.code, test.stderr).to.equal(0);
    expect(JSON.parse(test.stdout)).to.deep.equal({ sent: true, to, transport: 'smtp' });
    expect((await smtp.waitForMailTo(to)).subject).to.equal('Portcullis test message');

    const refused = await runNode(['src/cli.ts', 'mail', 'test', '--to', 'a@example.test\nBcc: b@example.test'], env);
    expect(refused.code).to.equal(1);
    expect(refused.stderr.trim()).to.equal('error: a mail recipient must be one plain email address');
  });

  it('stops with the server: after stop() nothing queued is sent', async function () {
    await servers.running.stop(1000);
    const to = uniqueEmail('after-stop');
    const { id } = await servers.deps.mail.enqueue(undefined, testMail(to));
    // A running worker is woken by the enqueue and sends within moments (the first test): none does.
    await consistently(() => expect(smtp.mailsTo(to), 'mail sent after stop').to.have.length(0), { forMs: 500 });
    expect((await servers.deps.knex('outbox').where({ id }).first<{ status: string } | undefined>())?.status).to.equal('pending');
    await servers.deps.knex('outbox').where({ id }).delete();
  });
});
