/** Scopes Portcullis knows, with the words the consent page shows for them. */
export const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'] as const;

/** Scopes of the resource API (audience API_URL); they appear in its JWT access tokens. */
export const API_SCOPES = ['records:read', 'records:write', 'admin'] as const;

const descriptions: Record<string, string> = {
  openid: 'Confirm who you are',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Stay connected when you are not using it',
  'records:read': 'Read your records',
  'records:write': 'Create, change and delete your records',
  admin: 'Administer Portcullis with your privileges',
};

export function describeScope(name: string): { name: string; text: string } {
  return { name, text: descriptions[name] ?? name };
}
