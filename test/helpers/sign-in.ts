import { generate } from 'otplib';
import { Browserless, formOf } from './browserless.ts';
import { authorizationRequestTo, RP_REDIRECT } from './oidc.ts';

/**
 * Sign-in through the real interaction pages over HTTP (the Browserless cookie jar): the one
 * helper every protocol suite uses to get from an authorization request to the client's
 * redirect URI. Real Chromium suites drive the same pages with `passwordStep` in browser.ts.
 */
export type Credentials = { email: string; password: string };

/** A page the caller answers itself: the form to submit, or undefined to leave it to signIn. */
export type PageHandler = (
  html: string,
  at: URL,
) =>
  Promise<{ action: string; fields: Record<string, string> } | undefined> | { action: string; fields: Record<string, string> } | undefined;

export type SignInOptions = {
  /** The user's TOTP secret: the second-factor page is answered with a code for the next time step. */
  totpSecret?: string;
  /** Answers the second-factor page with this recovery code instead of an app code. */
  recoveryCode?: string;
  /** Tried on every page after the login form (e.g. an enrolment page a suite fills in itself). */
  pages?: PageHandler[];
};

/**
 * Follows the authorization request through login, the second factor when asked and consent;
 * returns the URL the provider sent the browser to (the client's redirect URI with a code or an
 * error). Fails with the page it is on when a page is not one it knows, or when it never leaves
 * the issuer.
 */
export async function signIn(browser: Browserless, authorizationUrl: URL, user: Credentials, options: SignInOptions = {}): Promise<URL> {
  let { response, url } = await browser.follow(authorizationUrl);
  for (let steps = 0; steps < 8 && url.origin === browser.origin; steps++) {
    const html = await response.text();
    const answer = await answerOf(html, url, user, options);
    if (!answer) throw new Error(`sign-in: unexpected page ${url.pathname} (${response.status}): ${html.slice(0, 400)}`);
    ({ response, url } = await browser.submit(answer.action, answer.fields));
  }
  if (url.origin === browser.origin) throw new Error(`sign-in did not leave the issuer (still at ${url.pathname})`);
  return url;
}

async function answerOf(html: string, at: URL, user: Credentials, options: SignInOptions) {
  if (html.includes('name="password"')) {
    const form = formOf(html, '/login');
    return { action: form.action, fields: { csrf: form.csrf, email: user.email, password: user.password } };
  }
  for (const handler of options.pages ?? []) {
    const answer = await handler(html, at);
    if (answer) return answer;
  }
  if (html.includes('/mfa/totp') && options.recoveryCode !== undefined) {
    const form = formOf(html, '/mfa/totp');
    return { action: form.action.replace(/\/mfa\/totp$/, '/mfa/recovery'), fields: { csrf: form.csrf, code: options.recoveryCode } };
  }
  if (html.includes('/mfa/totp') && options.totpSecret) {
    // The enrolment's code spent the current time step (one use per step): answer with the next one.
    const code = await generate({ secret: options.totpSecret, epoch: Math.floor(Date.now() / 1000) + 30 });
    const form = formOf(html, '/mfa/totp');
    return { action: form.action, fields: { csrf: form.csrf, code } };
  }
  if (html.includes('/confirm')) {
    const form = formOf(html, '/confirm');
    return { action: form.action, fields: { csrf: form.csrf } };
  }
  return undefined;
}

/** A browser signed in as `user` through a client's authorization request, and the code it got. */
export async function signedInBrowser(issuer: string, clientId: string, user: Credentials, options: SignInOptions = {}) {
  const browser = new Browserless(issuer);
  const callback = await signIn(browser, authorizationRequestTo(issuer, clientId).url, user, options);
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`sign-in ended without a code: ${callback.href}`);
  return { browser, callback, code };
}

/**
 * A prompt=none request for the client with the browser's session: "code" while the session
 * serves, otherwise the error the provider sent to the redirect URI; and the response it came with.
 */
export async function silentSignIn(
  browser: Browserless,
  clientId: string,
  params: Record<string, string> = {},
): Promise<{ outcome: string; response: Response }> {
  const { response, url } = await browser.follow(authorizationRequestTo(browser.origin, clientId, { prompt: 'none', ...params }).url);
  if (!url.href.startsWith(RP_REDIRECT)) throw new Error(`prompt=none stayed on ${url.pathname} (${response.status})`);
  return { outcome: url.searchParams.get('code') ? 'code' : (url.searchParams.get('error') ?? 'nothing'), response };
}

/**
 * Signs `browser` in to the account page with the password (the account page is a client of the
 * provider, first party: no consent); returns the account page. Fails unless it lands there.
 */
export async function signInToAccount(browser: Browserless, user: Credentials): Promise<string> {
  const start = await browser.follow('/account');
  const login = formOf(await start.response.text(), '/login');
  const { response, url } = await browser.submit(login.action, { csrf: login.csrf, email: user.email, password: user.password });
  const html = await response.text();
  if (url.pathname !== '/account') throw new Error(`account sign-in ended at ${url.pathname} (${response.status}): ${html.slice(0, 300)}`);
  return html;
}
