import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

/** A mail as the SMTP server received it: the envelope, the raw message and its parsed form. */
export type ReceivedMail = {
  /** SMTP envelope: MAIL FROM and every RCPT TO, as the client gave them. */
  envelope: { from: string; to: string[] };
  raw: string;
  parsed: ParsedMail;
  subject: string;
  from: string;
  to: string;
  text: string;
  html: string;
  /** The first link of the text part (what the user would click). */
  link: string | undefined;
};

export type TestSmtpServer = {
  readonly port: number;
  /** MAIL_URL for this server (with the credentials when it requires them). */
  readonly url: string;
  /** Everything received since the start (or the last clear), in order. */
  readonly received: ReceivedMail[];
  /** The mails sent to `address` so far. */
  mailsTo(address: string): ReceivedMail[];
  /** Resolves with the first mail to `address` (waiting up to timeoutMs for it). */
  waitForMailTo(address: string, timeoutMs?: number): Promise<ReceivedMail>;
  /** RCPT TO for this address gets `550 no such user` (a permanent refusal). */
  rejectRecipient(address: string): void;
  /** An outage: stops listening (connections are refused) until `start`. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  readonly listening: boolean;
  close(): Promise<void>;
};

/**
 * A real SMTP server in process (smtp-server), on 127.0.0.1 and a free port, that parses what it
 * receives (mailparser). Plain SMTP without STARTTLS; with `auth`, AUTH is required and only those
 * credentials pass. Suites that send mail point MAIL_URL at `url`.
 */
export async function startSmtpServer(options: { auth?: { user: string; pass: string } } = {}): Promise<TestSmtpServer> {
  const received: ReceivedMail[] = [];
  const rejected = new Set<string>();
  const waiters = new Set<() => void>();
  const { auth } = options;

  const serverOptions: SMTPServerOptions = {
    logger: false,
    disabledCommands: auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !auth,
    allowInsecureAuth: true,
    closeTimeout: 1000,
    onAuth(credentials, _session, callback) {
      if (auth && credentials.username === auth.user && credentials.password === auth.pass) callback(null, { user: auth.user });
      else callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      if (rejected.has(address.address.toLowerCase())) callback(Object.assign(new Error('no such user'), { responseCode: 550 }));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw).then(
          (parsed) => {
            const text = parsed.text ?? '';
            const mailFrom = session.envelope.mailFrom;
            received.push({
              envelope: { from: mailFrom ? mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) },
              raw,
              parsed,
              subject: parsed.subject ?? '',
              from: parsed.from?.text ?? '',
              to: (Array.isArray(parsed.to) ? parsed.to : parsed.to ? [parsed.to] : []).map((a) => a.text).join(', '),
              text,
              html: typeof parsed.html === 'string' ? parsed.html : '',
              link: /https?:\/\/[^\s<>"]+/.exec(text)?.[0],
            });
            for (const wake of waiters) wake();
            callback();
          },
          (error: unknown) => callback(error as Error),
        );
      });
    },
  };

  let server: SMTPServer | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const next = new SMTPServer(serverOptions);
      next.on('error', () => undefined);
      next.server.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        next.server.off('error', reject);
        port = (next.server.address() as { port: number }).port;
        server = next;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      const current = server;
      server = undefined;
      if (!current) {
        resolve();
        return;
      }
      current.close(() => resolve());
    });

  await listen();
  const mailsTo = (address: string) => received.filter((mail) => mail.envelope.to.some((to) => to.toLowerCase() === address.toLowerCase()));

  return {
    get port() {
      return port;
    },
    get url() {
      return auth
        ? `smtp://${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@127.0.0.1:${port}`
        : `smtp://127.0.0.1:${port}`;
    },
    received,
    mailsTo,
    async waitForMailTo(address, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const [mail] = mailsTo(address);
        if (mail) return mail;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no mail to ${address} within ${timeoutMs} ms (received ${received.length})`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(left, 250));
          function done() {
            clearTimeout(timer);
            waiters.delete(done);
            resolve();
          }
          waiters.add(done);
        });
      }
    },
    rejectRecipient(address) {
      rejected.add(address.toLowerCase());
    },
    stop: close,
    start: listen,
    get listening() {
      return server !== undefined;
    },
    close,
  };
}
