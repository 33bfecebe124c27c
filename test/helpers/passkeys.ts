import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { type Browserless, formOf, passkeyOptionsOf } from './browserless.ts';
import { createTestUser } from './factories.ts';
import type { TestServers } from './servers.ts';
import { softAuthenticator, type SoftAuthenticator } from './soft-authenticator.ts';

/**
 * Passkeys over HTTP for the suites that drive them without a browser: a software authenticator
 * registered for a user the way the account page registers one, the login page's passwordless
 * path (its form, its options, an answer posted to it), and second-factor setups left unfinished.
 */

/** Registers a new software passkey for `user` (options and finish, as the account page does); throws if refused. */
export async function registerPasskey(servers: TestServers, user: { id: string; email: string }): Promise<SoftAuthenticator> {
  const soft = softAuthenticator({ origin: servers.issuer });
  const binding = `setup:${user.id}`;
  const options = await servers.deps.mfa.webauthn.registrationOptions({
    binding,
    userId: user.id,
    email: user.email,
    displayName: user.email,
  });
  const finished = await servers.deps.mfa.finishRegistration(
    { binding, userId: user.id, response: soft.register(options), name: 'Key' },
    {},
  );
  if (!finished.ok) throw new Error(`the passkey of ${user.email} was not registered`);
  return soft;
}

/** A new user with one software passkey. */
export async function userWithPasskey(servers: TestServers) {
  const user = await createTestUser(servers.deps);
  return { user, soft: await registerPasskey(servers, user) };
}

/**
 * Opens `authorizationUrl` in `browser` and fetches the login page's passwordless options as its
 * script does (R14): the passkey form (action, form token), the options and the interaction uid.
 */
export async function passkeyLoginPage(browser: Browserless, authorizationUrl: URL) {
  const { response, url } = await browser.follow(authorizationUrl);
  const login = formOf(await response.text(), '/passkey');
  const uid = url.pathname.split('/')[2] ?? '';
  const options = await passkeyOptionsOf<PublicKeyCredentialRequestOptionsJSON>(browser, `/interaction/${uid}/passkey/options`, login.csrf);
  return { login, options, uid };
}

/**
 * A passwordless sign-in from the login page: `answer` answers its options, and consent is given
 * when asked. Returns where it ended: the client's redirect URI, or the issuer page it stayed on
 * (with that page, e.g. "The passkey could not be used").
 */
export async function passkeySignIn(
  browser: Browserless,
  authorizationUrl: URL,
  answer: (options: PublicKeyCredentialRequestOptionsJSON) => unknown,
): Promise<{ url: URL; html: string }> {
  const { login, options } = await passkeyLoginPage(browser, authorizationUrl);
  let landed = await browser.submit(login.action, { csrf: login.csrf, response: JSON.stringify(answer(options)) });
  let html = landed.url.origin === browser.origin ? await landed.response.text() : '';
  if (landed.url.origin === browser.origin && landed.response.status === 200 && html.includes('/confirm')) {
    const consent = formOf(html, '/confirm');
    landed = await browser.submit(consent.action, { csrf: consent.csrf });
    html = landed.url.origin === browser.origin ? await landed.response.text() : '';
  }
  return { url: landed.url, html };
}

/**
 * On the account page (`accountHtml`, signed in in `browser`), starts "Add a passkey" (its
 * options, a same-origin POST with the page's token, R14) and "Set up an authenticator app", and
 * leaves both unfinished: each ceremony is then bound to the session, in webauthn_challenges and
 * mfa_totp (S12).
 */
export async function startMfaSetups(browser: Browserless, accountHtml: string): Promise<void> {
  const passkeys = formOf(accountHtml, '/account/passkeys');
  await passkeyOptionsOf(browser, '/account/passkeys/options', passkeys.csrf);
  const begin = formOf(accountHtml, '/account/totp/begin');
  const setup = await browser.submit(begin.action, { csrf: begin.csrf });
  if (setup.url.pathname !== '/account/totp') throw new Error(`the authenticator app setup did not start (at ${setup.url.pathname})`);
  await setup.response.body?.cancel();
}
