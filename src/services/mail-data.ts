/**
 * What each mail template (views/mail/<lang>/<template>.txt.eta and .html.eta) reads from `it`,
 * the way src/auth/view-data.ts types the pages: a misspelled or missing field fails the
 * typecheck instead of mailing an empty string.
 *
 * Links are never whole URLs here: `links` holds paths on the issuer, and the templates get them
 * as `ISSUER + path` (it.links.<name>, src/services/mail-templates.ts). No value from a request
 * (its Host, an X-Forwarded-Host) can make a mail point anywhere else.
 *
 * Adding a mail: an entry here, its two templates in views/mail/en/ (the text one starting with
 * its `Subject:` line), and a test that reads it from the SMTP test server (test/helpers/smtp.ts).
 */

/** A path on the issuer, such as `/account` or `/reset?token=…`. */
export type IssuerPath = `/${string}`;

/** A mail without links (a notice that must not send its reader anywhere). */
type NoLinks = Partial<Record<'none', never>>;

/** Every template's data has its links (maybe none); the renderer turns them into URLs on the issuer. */
type Templates<T extends Record<string, { links: Record<string, IssuerPath> }>> = T;

export type MailData = Templates<{
  /** `portcullis mail test --to …`: the transport and the templates, end to end. */
  test: { sentBy: string; links: { account: IssuerPath } };
  /** Self-registration: the code that proves the address (the account is made when it is entered). */
  'sign-up-code': { code: string; minutes: number; links: { verify: IssuerPath } };
  /** An account whose address is not verified, signing in while REQUIRE_VERIFIED_EMAIL is on. */
  'verify-email-code': { code: string; minutes: number; links: { verify: IssuerPath } };
  /** An address change on the account page: the code goes to the new address. */
  'email-change-code': { code: string; minutes: number; links: { verify: IssuerPath } };
  /**
   * To an address that already has an account, instead of a code: someone tried to sign up with
   * it, or to move another account to it. The requester sees the same page either way.
   */
  'account-exists': { attempt: 'sign-up' | 'change'; links: { signIn: IssuerPath } };
  /** To the old address once an address change took effect (the new one shown masked). */
  'email-changed': { newAddress: string; links: NoLinks };
}>;

export type MailTemplate = keyof MailData;

/** Every template at run time (the enqueue checks names against it; a test checks each has both files). */
export const MAIL_TEMPLATES: readonly MailTemplate[] = [
  'test',
  'sign-up-code',
  'verify-email-code',
  'email-change-code',
  'account-exists',
  'email-changed',
];
