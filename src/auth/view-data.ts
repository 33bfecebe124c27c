import type { ScopeDescription } from '../shared/scopes.ts';

/**
 * What each page template (views/<name>.eta) reads from `it`, so a misspelled or missing field
 * fails the typecheck instead of rendering an empty string. Nested shapes list only the fields
 * the template uses; callers may pass richer objects (a service's rows).
 */

/** A link to another second-factor method on the MFA pages. */
type OtherMethod = { method: string; href: string };

/** A TOTP secret being set up (views/totp-setup.eta). */
type TotpSetup = { secret: string; qrSvg: string };

type AccountPage = {
  user: { email: string; emailVerified: boolean; name?: string | null; hasPassword: boolean };
  /** Whether the address can be changed here (a mail transport exists for the new address's code). */
  emailChange: boolean;
  signedInAt: Date;
  totp: { enabled: boolean; confirmedAt?: Date | null | undefined; lastUsedAt?: Date | null | undefined };
  passkeys: { id: string; name: string | null; created: Date; lastUsed: Date | null; synced: boolean; flagged: boolean }[];
  codesLeft: number;
  hasFactor: boolean;
  grants: { id: string; clientName?: string | undefined; scopes: ScopeDescription[]; lastUsed?: Date | null | undefined }[];
  reuse: { clientName: string; at: Date }[];
  accesses: { at: Date; app: string | null; via: string; readerId: string | null; records: { id: string; type: string }[] }[];
  offers: { record_id: string; record_type: string; from: { email: string }; offered_at: string }[];
  received: { record_id: string; record_type: string; from: { email: string }; shared_at: string }[];
  csrf: string;
  notice?: string | undefined;
  error?: string | undefined;
};

export type ViewData = {
  login: {
    clientName: string;
    email: string;
    error?: string | undefined;
    csrf: string;
    action: string;
    passkeyAction: string;
    passkeyOptionsUrl: string;
    abortAction: string;
    /** "Create an account" (SELF_REGISTRATION); absent when self-registration is off. */
    signUpHref?: string | undefined;
  };
  'sign-up': {
    clientName: string;
    email: string;
    error?: string | undefined;
    /** The field the error is about (its input is described by the error). */
    errorField?: 'email' | 'password' | undefined;
    minLength: number;
    csrf: string;
    action: string;
    signInHref: string;
    abortAction: string;
  };
  /** A mailed code's page: a sign-up, an address verified at sign-in, or a new address (account page). */
  'email-code': {
    purpose: 'sign-up' | 'verify' | 'change';
    /** Where the code went (or goes). */
    email: string;
    /** The account's address until a change takes effect. */
    currentEmail?: string | undefined;
    /** Whether a code is out (else only the button that sends one). */
    sent: boolean;
    minutes: number;
    /** Filled in from the mail's link. */
    code: string;
    notice?: string | undefined;
    error?: string | undefined;
    errorLink?: { href: string; label: string } | undefined;
    csrf: string;
    action: string;
    resendAction: string;
    back?: { href: string; label: string } | undefined;
    abortAction?: string | undefined;
    abortLabel?: string | undefined;
  };
  consent: { clientName: string; email: string; scopes: ScopeDescription[]; csrf: string; action: string; abortAction: string };
  logout: { host: string; form: string; clientName?: string | undefined };
  'logged-out': { clientName?: string | undefined };
  error: { heading: string; message: string; code?: string | undefined; description?: string | undefined; home?: string | undefined };
  'device-code': { action: string; xsrf: string; userCode?: string | undefined; error?: string | undefined };
  'device-confirm': {
    action: string;
    xsrf: string;
    userCode: string;
    clientName: string;
    logoUri?: string | undefined;
    scopes: ScopeDescription[];
    startedIso: string;
    startedText: string;
    ip: string;
    userAgent: string;
    email?: string | undefined;
  };
  'device-done': { heading: string; message: string; hint?: string | undefined };
  mfa: {
    clientName: string;
    email: string;
    method?: string | undefined;
    others: OtherMethod[];
    error?: string | undefined;
    csrf: string;
    action: string;
    webauthnOptions: string;
    abortAction: string;
  };
  'mfa-enroll': {
    email: string;
    method?: string | undefined;
    others: OtherMethod[];
    totp?: TotpSetup | undefined;
    registration: string;
    error?: string | undefined;
    csrf: string;
    action: string;
    /** Begins this sign-in's app setup (a POST: a GET never begins one, R14). */
    beginAction: string;
    abortAction: string;
  };
  'mfa-recovery-codes': {
    codes?: string[] | undefined;
    notice?: string | undefined;
    csrf?: string | undefined;
    action?: string | undefined;
    continueHref?: string | undefined;
    continueLabel: string;
  };
  account: AccountPage;
  'account-totp': { totp?: TotpSetup | undefined; csrf: string; action: string; beginAction: string; error?: string | undefined };
};

export type ViewName = keyof ViewData;
