import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import { MAIL_TEMPLATES, type MailData, type MailTemplate } from './mail-data.ts';

const viewsDir = fileURLToPath(new URL('../../views/', import.meta.url));

/** What a mail's templates render to: the subject line, and both parts of the body. */
export type RenderedMail = { subject: string; text: string; html: string };

export class MailTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MailTemplateError';
  }
}

/** The language every template exists in; any other is tried first and falls back to it. */
export const DEFAULT_MAIL_LANGUAGE = 'en';
/** A folder of views/mail/ that may be a language tag (en, de, pt-BR). */
const LANGUAGE = /^[a-z][a-zA-Z0-9-]{1,11}$/;

/**
 * `ISSUER + path`, refused unless the result is on the issuer's own origin: a path only (no
 * scheme, no `//host`, no backslash a browser would read as a slash, no whitespace or control
 * character to split a line).
 */
export function issuerLink(issuer: string, path: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (!path.startsWith('/') || path.startsWith('//') || /[\\\s\u0000-\u001f\u007f]/.test(path)) {
    throw new MailTemplateError('a mail link must be a path on the issuer (like /account)');
  }
  const base = new URL(issuer);
  const url = new URL(path, base);
  if (url.origin !== base.origin) throw new MailTemplateError('a mail link must stay on the issuer');
  return url.href;
}

/** A subject is one line: every run of line breaks, tabs and other control characters becomes one space. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters (CR and LF first) must not reach a header
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
}

/**
 * Renders mails from views/mail/<lang>/ with Eta (the pages' engine): the HTML part escaped
 * (autoEscape, as the pages), the text part as written (it is never read as HTML). The text
 * template starts with its `Subject:` line and a blank line, so a translation carries its subject
 * beside its body.
 */
export function createMailTemplates({ issuer, views = viewsDir }: { issuer: string; views?: string }) {
  const html = new Eta({ views, cache: true, autoEscape: true, autoTrim: false });
  const text = new Eta({ views, cache: true, autoEscape: false, autoTrim: false });
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the views folder of this checkout (or a test's), never from a request
  const languages = readdirSync(`${views}/mail`, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && LANGUAGE.test(entry.name))
    .map((entry) => entry.name);

  return {
    languages,

    render<T extends MailTemplate>(template: T, data: MailData[T], lang: string = DEFAULT_MAIL_LANGUAGE): RenderedMail {
      if (!MAIL_TEMPLATES.includes(template)) throw new MailTemplateError(`unknown mail template ${JSON.stringify(template)}`);
      const language = languages.includes(lang) ? lang : DEFAULT_MAIL_LANGUAGE;
      const links = Object.fromEntries(Object.entries(data.links).map(([name, path]) => [name, issuerLink(issuer, path)]));
      const it = { ...data, links, lang: language, issuer };
      const rendered = text.render(`mail/${language}/${template}.txt.eta`, it).replace(/^\s+/, '');
      // The head is everything up to the first blank line: a value that brought a line break into
      // the subject line is folded into it (oneLine), never read as a header or the body.
      const blank = rendered.indexOf('\n\n');
      const head = blank === -1 ? '' : rendered.slice(0, blank);
      const subject = head.startsWith('Subject:') ? oneLine(head.slice('Subject:'.length)) : '';
      if (!subject) throw new MailTemplateError(`mail template ${template}.txt.eta must start with a "Subject:" line and a blank line`);
      return {
        subject,
        text: `${rendered.slice(blank + 2).trim()}\n`,
        html: html.render(`mail/${language}/${template}.html.eta`, { ...it, subject }).trim() + '\n',
      };
    },
  };
}

export type MailTemplates = ReturnType<typeof createMailTemplates>;
