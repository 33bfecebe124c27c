import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import knexFactory from 'knex';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { createAuditService } from '../../src/services/audit.ts';
import { createMailService } from '../../src/services/mail.ts';
import { MAIL_TEMPLATES } from '../../src/services/mail-data.ts';
import { createMailTemplates, issuerLink, MailTemplateError } from '../../src/services/mail-templates.ts';
import { createMailTransport } from '../../src/services/mail-transport.ts';
import { createMasterBox } from '../../src/shared/master-key.ts';
import { createAuditEventStore } from '../../src/store/audit-events.ts';
import { createOutboxStore } from '../../src/store/outbox.ts';
import { uniqueEmail } from '../helpers/factories.ts';
import { testConfigEnv } from '../helpers/servers.ts';
import { startSmtpServer } from '../helpers/smtp.ts';
import { testEnv } from '../setup.ts';

const ISSUER = 'https://id.example.test';
const views = fileURLToPath(new URL('../../views/', import.meta.url));
const fixtures = fileURLToPath(new URL('../fixtures/mail-views/', import.meta.url));

/** Mail templates (issue 12): typed data, links on ISSUER, one-line subjects, languages. */
describe('issue 12 mail templates', function () {
  it('every template exists in every language, as text (starting with its Subject line) and HTML', function () {
    const languages = readdirSync(`${views}mail`);
    expect(languages).to.include('en');
    for (const lang of languages) {
      for (const template of MAIL_TEMPLATES) {
        const text = `${views}mail/${lang}/${template}.txt.eta`;
        expect(existsSync(`${views}mail/${lang}/${template}.html.eta`), `${lang}/${template}.html.eta`).to.equal(true);
        expect(readFileSync(text, 'utf8'), `${lang}/${template}.txt.eta`).to.match(/^(<%[^\n]*%>\n)?Subject: /);
      }
    }
  });

  it('renders the real test mail: both parts, one layout, every link on ISSUER, data escaped in HTML only', function () {
    const templates = createMailTemplates({ issuer: ISSUER });
    const mail = templates.render('test', { sentBy: 'Ada & <Bob>', links: { account: '/account' } });
    expect(mail.subject).to.equal('Portcullis test message');
    expect(mail.text).to.include('sent by Ada & <Bob>.');
    expect(mail.text).to.include(`${ISSUER}/account`);
    expect(mail.text).to.include(`sign-in service at ${ISSUER}.`);
    expect(mail.html).to.include('sent by Ada &amp; &lt;Bob&gt;.');
    expect(mail.html).to.not.include('<Bob>');
    expect(mail.html).to.include(`<html lang="en">`);
    expect(mail.html).to.include(`<title>Portcullis test message</title>`);
    for (const [, href] of mail.html.matchAll(/href="([^"]*)"/g)) expect(href).to.equal(`${ISSUER}/account`);
  });

  it('issuerLink keeps a path on the issuer and refuses what would leave it', function () {
    expect(issuerLink(ISSUER, '/reset?token=abc#x')).to.equal(`${ISSUER}/reset?token=abc#x`);
    expect(issuerLink('http://127.0.0.1:3000', '/a/b')).to.equal('http://127.0.0.1:3000/a/b');
    for (const path of ['//evil.example', '/\\evil.example', 'https://evil.example/', 'evil', '/a b', '/a\r\nb', '/a\tb', ''])
      expect(() => issuerLink(ISSUER, path), JSON.stringify(path)).to.throw(MailTemplateError);
  });

  it('picks the recipient’s language when there is one, and falls back to English', function () {
    const templates = createMailTemplates({ issuer: ISSUER, views: fixtures });
    expect(templates.languages).to.have.members(['en', 'de']);
    const data = { sentBy: 'Ada', links: { account: '/account' as const } };
    expect(templates.render('test', data, 'de').subject).to.equal('Gruß von Ada');
    expect(templates.render('test', data, 'de').html).to.include('lang="de"');
    for (const lang of ['fr', '../en', 'de/../../x', undefined]) {
      const mail = templates.render('test', data, lang);
      expect(mail.subject, String(lang)).to.equal('Hello from Ada');
      expect(mail.text).to.include('(en)');
    }
  });

  it('a line break in a subject’s data is folded into the subject line: no header can be added (sent through a real SMTP server)', async function () {
    const templates = createMailTemplates({ issuer: ISSUER, views: fixtures });
    const injected = 'Mallory\r\nBcc: attacker@example.test\r\nX-Injected: yes';
    const rendered = templates.render('test', { sentBy: injected, links: { account: '/account' } });
    expect(rendered.subject).to.equal('Hello from Mallory Bcc: attacker@example.test X-Injected: yes');

    const smtp = await startSmtpServer();
    const knex = knexFactory({ client: 'pg', connection: testEnv.databaseUrl, pool: { min: 0, max: 2 } });
    const logger = pino({ level: 'silent' });
    const config = loadConfig({ ...testConfigEnv({ storage: 'postgres' }), MAIL_URL: smtp.url });
    const mail = createMailService({
      outbox: createOutboxStore(knex),
      box: createMasterBox(randomBytes(32)),
      templates,
      transport: createMailTransport(config, logger),
      settings: { ...config.mail, from: 'Portcullis <no-reply@example.test>' },
      audit: createAuditService({ store: createAuditEventStore(knex, Buffer.from(testEnv.auditKey, 'base64')), logger }),
      logger,
    });
    try {
      const to = uniqueEmail('subject');
      await mail.enqueue(undefined, { to, template: 'test', data: { sentBy: injected, links: { account: '/account' } } });
      await mail.deliverDue(50);
      const received = await smtp.waitForMailTo(to);
      expect(received.envelope.to).to.deep.equal([to]);
      expect(received.parsed.headers.has('bcc')).to.equal(false);
      expect(received.parsed.headers.has('x-injected')).to.equal(false);
      expect(received.subject).to.equal('Hello from Mallory Bcc: attacker@example.test X-Injected: yes');
      expect(smtp.mailsTo('attacker@example.test')).to.have.length(0);
      // The raw header block holds exactly one Subject line and no injected header.
      const head = received.raw.slice(0, received.raw.indexOf('\r\n\r\n'));
      expect(head).to.not.match(/^(Bcc|X-Injected):/im);
    } finally {
      mail.close();
      await knex.destroy();
      await smtp.close();
    }
  });
});
