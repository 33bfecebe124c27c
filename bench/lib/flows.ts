import { createHash, randomBytes } from 'node:crypto';
import { Browserless } from '../../test/helpers/browserless.ts';
import { signIn } from '../../test/helpers/sign-in.ts';
import { basicAuth, form } from './target.ts';

/** Multi-step flows over HTTP (no browser), shared by Portcullis and the bare oidc-provider floor. */
export type WebClient = { client_id: string; client_secret: string };
export type TokenResponse = { access_token: string; refresh_token?: string; id_token?: string; error?: string };

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

export async function tokenRequest(issuer: string, fields: Record<string, string>, client?: WebClient): Promise<TokenResponse> {
  const { headers, body } = form(fields);
  const response = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { ...headers, ...(client ? { Authorization: basicAuth(client.client_id, client.client_secret) } : {}) },
    body,
  });
  const json = (await response.json()) as TokenResponse;
  if (!response.ok) throw new Error(`token request failed (${response.status}): ${JSON.stringify(json)}`);
  return json;
}

/**
 * Authorization code + PKCE: authorize → (login form with password, when the browser has no
 * session) → consent → code → token. `browser` keeps the session between calls.
 */
export async function codeFlow(options: {
  issuer: string;
  client: WebClient;
  redirectUri: string;
  browser: Browserless;
  email: string;
  password: string;
  scope: string;
  resource?: string;
}): Promise<TokenResponse> {
  const { verifier, challenge } = pkce();
  const url = new URL('/auth', options.issuer);
  const params: Record<string, string> = {
    client_id: options.client.client_id,
    response_type: 'code',
    redirect_uri: options.redirectUri,
    scope: options.scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
    prompt: 'consent',
    ...(options.resource ? { resource: options.resource } : {}),
  };
  url.search = new URLSearchParams(params).toString();
  const callback = await signIn(options.browser, url, options);
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`no code in ${callback.toString()}`);
  return tokenRequest(
    options.issuer,
    {
      grant_type: 'authorization_code',
      code,
      redirect_uri: options.redirectUri,
      code_verifier: verifier,
      ...(options.resource ? { resource: options.resource } : {}),
    },
    options.client,
  );
}

/** Runs `count` jobs with `concurrency` in flight. */
export async function pool<T>(count: number, concurrency: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await job(i);
      }
    }),
  );
  return results;
}

/**
 * Mints `count` refresh tokens (consent + code each, no password): four browsers sign in once
 * each and then work sequentially (one session does not take concurrent logins), so the tokens
 * of a lane share one grant.
 */
export async function mintRefreshTokens(options: {
  issuer: string;
  client: WebClient;
  redirectUri: string;
  email: string;
  password: string;
  count: number;
}): Promise<string[]> {
  const lanes = 4;
  const perLane = await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      const flow = { ...options, browser: new Browserless(options.issuer), scope: 'openid offline_access' };
      await codeFlow(flow);
      const tokens: string[] = [];
      for (let i = lane; i < options.count; i += lanes) {
        const issued = await codeFlow(flow);
        if (!issued.refresh_token) throw new Error('no refresh token issued');
        tokens.push(issued.refresh_token);
      }
      return tokens;
    }),
  );
  return perLane.flat();
}

export async function deviceCode(issuer: string, clientId: string): Promise<string> {
  const { headers, body } = form({ client_id: clientId, scope: 'openid offline_access' });
  const response = await fetch(`${issuer}/device/auth`, { method: 'POST', headers, body });
  const json = (await response.json()) as { device_code?: string };
  if (!json.device_code) throw new Error(`device authorization failed: ${JSON.stringify(json)}`);
  return json.device_code;
}

export { Browserless };
