import { mkdir, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import type { Config } from '../config/types.ts';
import type { Logger } from '../shared/logger.ts';

/** One mail as it leaves: the outbox row's id names it (the .eml file, the logs), never its content. */
export type OutgoingMail = { id: string; from: string; to: string; subject: string; text: string; html: string };

/**
 * Where mail goes: an SMTP server (MAIL_URL), or, in development without one, .eml files in
 * DATA_DIR/outbox/. `send` resolves once the server accepted the message (or the file is written)
 * and throws otherwise; the outbox decides about retries.
 */
export type MailTransport = {
  readonly kind: 'smtp' | 'files';
  send(mail: OutgoingMail): Promise<void>;
  /** Connects and greets (and authenticates) without sending: `portcullis mail test`. */
  verify(): Promise<void>;
  close(): void;
};

/** Headers of every mail: an automatic message (RFC 3834), so auto-responders stay silent. */
const HEADERS = { 'Auto-Submitted': 'auto-generated' };

/**
 * The message nodemailer sends or writes, the same for every transport. Recipients are checked
 * when a mail is queued (src/services/mail.ts); nodemailer is told to read no file and no URL
 * into a message either.
 */
const messageOf = (mail: OutgoingMail) => ({
  from: mail.from,
  to: mail.to,
  subject: mail.subject,
  text: mail.text,
  html: mail.html,
  headers: HEADERS,
  disableFileAccess: true,
  disableUrlAccess: true,
});

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || (isIPv4(host) && host.startsWith('127.'));
}

/**
 * nodemailer's options for MAIL_URL. Short timeouts (the defaults wait minutes), well inside the
 * outbox lease; in production, smtp:// to another machine must upgrade with STARTTLS (credentials
 * and links never cross a network in clear) unless the URL itself says otherwise.
 */
export function smtpOptions(url: string, nodeEnv: Config['nodeEnv']) {
  const host = new URL(url).hostname;
  const plain = url.startsWith('smtp://');
  return {
    url,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
    dnsTimeout: 10_000,
    ...(plain && nodeEnv === 'production' && !isLoopbackHost(host) ? { requireTLS: true } : {}),
  };
}

function smtpTransport(url: string, nodeEnv: Config['nodeEnv']): MailTransport {
  const transporter = createTransport(smtpOptions(url, nodeEnv));
  return {
    kind: 'smtp',
    async send(mail) {
      await transporter.sendMail(messageOf(mail));
    },
    async verify() {
      await transporter.verify();
    },
    close() {
      transporter.close();
    },
  };
}

/** The first link of the text part: what a developer clicks. */
export const firstLink = (text: string): string | undefined => /https?:\/\/[^\s<>"]+/.exec(text)?.[0];

/**
 * Development without MAIL_URL: each mail becomes DATA_DIR/outbox/<time>-<id>.eml (nodemailer's
 * stream transport builds the exact message SMTP would carry), readable by its owner only, and
 * its first link is logged. Never created in production (createMailTransport).
 */
function fileTransport(dataDir: string, logger: Logger): MailTransport {
  const transporter = createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  const dir = join(dataDir, 'outbox');
  return {
    kind: 'files',
    async send(mail) {
      const info = await transporter.sendMail(messageOf(mail));
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- DATA_DIR (operator configuration) and a constant folder name
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${mail.id}.eml`);
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- inside DATA_DIR/outbox; the name is a time and a UUID we made
      await writeFile(file, info.message, { mode: 0o600 });
      logger.info({ file, link: firstLink(mail.text) }, 'mail written to DATA_DIR/outbox (no MAIL_URL: development only)');
    },
    async verify() {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- as above
      await mkdir(dir, { recursive: true, mode: 0o700 });
    },
    close() {
      transporter.close();
    },
  };
}

/**
 * The transport the configuration names: SMTP with MAIL_URL; .eml files outside production;
 * none in production without MAIL_URL (features that need mail refuse to start then:
 * src/config/mail-checks.ts).
 */
export function createMailTransport(config: Pick<Config, 'mail' | 'nodeEnv' | 'dataDir'>, logger: Logger): MailTransport | undefined {
  if (config.mail.url) return smtpTransport(config.mail.url, config.nodeEnv);
  if (config.nodeEnv === 'production') return undefined;
  return fileTransport(config.dataDir, logger);
}

/** Failures of the server or the way to it (not of one mail): the next mail would fail the same way. */
const SERVER_FAILURES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS', 'ETLS', 'EAUTH', 'ENOAUTH', 'EPROXY']);

/**
 * What the outbox keeps of a failed send: nodemailer's error code, the SMTP reply code and the
 * command (e.g. `EENVELOPE 550 RCPT TO`), never the message text, which may quote the recipient.
 * `permanent`: the server refused the recipient outright (5xx); trying again will not help.
 * `serverUnreachable`: the server is down, unreachable or refuses us (credentials, TLS).
 */
export function describeSendError(error: unknown): { summary: string; permanent: boolean; serverUnreachable: boolean } {
  const e = (error ?? {}) as { code?: unknown; responseCode?: unknown; command?: unknown };
  const code = typeof e.code === 'string' && /^[A-Z][A-Z0-9_]{1,31}$/.test(e.code) ? e.code : 'ERROR';
  const reply = typeof e.responseCode === 'number' && e.responseCode >= 200 && e.responseCode < 600 ? e.responseCode : undefined;
  const command = typeof e.command === 'string' && /^[A-Z][A-Z ]{1,15}$/.test(e.command) ? e.command : undefined;
  return {
    summary: [code, reply, command].filter((part) => part !== undefined).join(' '),
    permanent: code === 'EENVELOPE' && reply !== undefined && reply >= 500,
    serverUnreachable: SERVER_FAILURES.has(code),
  };
}
