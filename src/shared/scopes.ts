/** Scopes Portcullis knows, with the words the consent page shows for them. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

/** Scopes of the resource API (audience API_URL); they appear in its JWT access tokens. */
export const API_SCOPES = ['records:read', 'records:write', 'account:export', 'account:erase', 'admin'] as const;

/**
 * Whether a scope belongs to the API. API scopes are granted only for the API resource (aud =
 * API_URL), never as OpenID scopes of a grant (R13): oidc-provider treats every listed scope as
 * an OpenID scope when no resource is named.
 */
export const isApiScope = (scope: string): boolean => (API_SCOPES as readonly string[]).includes(scope);

/** API scopes a client holds when its registration names none: the everyday data scopes. */
export const DEFAULT_API_SCOPES: readonly string[] = ['records:read', 'records:write'];

/**
 * Scopes no client ever gets by default and no client can give itself: an operator grants them
 * (`portcullis clients create`, or an initial access token made with `--allow-scope`).
 * account:export hands over everything held about a person; account:erase destroys it.
 */
export const OPERATOR_SCOPES: readonly string[] = ['account:export', 'account:erase', 'admin'];

/** Operator scopes an initial access token may pass on to the clients it registers; `admin` only through the CLI. */
export const IAT_GRANTABLE_SCOPES: readonly string[] = ['account:export', 'account:erase'];

/** Scopes about the signed-in person: never in a client_credentials token, where there is no person. */
export const USER_ONLY_SCOPES: readonly string[] = ['account:export', 'account:erase'];

/** Scopes the user confirms on every authorization request, even when a grant already holds them. */
export const CONFIRM_EVERY_TIME_SCOPES: readonly string[] = ['account:erase'];

export type ScopeDescription = {
  name: string;
  text: string;
  /** Set for scopes that can do lasting harm: the pages mark them and say why, in words. */
  warning?: string;
};

// A Map: scope names come from requests, and an object would answer "constructor" (R12).
const descriptions = new Map<string, Omit<ScopeDescription, 'name'>>(
  Object.entries({
    openid: { text: 'Confirm who you are' },
    profile: { text: 'See your name' },
    email: { text: 'See your email address' },
    offline_access: { text: 'Stay connected when you are not using it' },
    'records:read': { text: 'Read your records' },
    'records:write': { text: 'Create, change and delete your records' },
    'account:export': {
      text: 'Download a copy of all your data: your profile, records, sharing and account activity',
      warning: 'All your data',
    },
    'account:erase': { text: 'Permanently delete your account and all your records', warning: 'Cannot be undone' },
    admin: { text: 'Administer Portcullis with your privileges', warning: 'Administrator access' },
  }),
);

export function describeScope(name: string): ScopeDescription {
  return { name, ...(descriptions.get(name) ?? { text: name }) };
}

/** Scopes with a warning, the most harmful first. */
const MOST_HARMFUL_FIRST = ['account:erase', 'admin', 'account:export'];

/** The descriptions for a consent or confirmation page: the dangerous ones first (worst first), each once. */
export function describeScopes(names: Iterable<string>): ScopeDescription[] {
  const described = [...new Set(names)].map(describeScope);
  const harm = (s: ScopeDescription): number => {
    if (!s.warning) return MOST_HARMFUL_FIRST.length + 1;
    const rank = MOST_HARMFUL_FIRST.indexOf(s.name);
    return rank === -1 ? MOST_HARMFUL_FIRST.length : rank;
  };
  // Array.prototype.sort is stable: the others keep the order they were asked in.
  return described.sort((a, b) => harm(a) - harm(b));
}
