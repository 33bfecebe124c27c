import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import * as client from 'openid-client';
import { authorizationRequest } from './oidc.ts';
import { eventually } from './wait.ts';

/**
 * Real headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser) for the
 * browser suites: one browser per test file, a fresh context per test, screenshots of the page
 * into test-artifacts/ when a test fails.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

export type BrowserSession = { context: BrowserContext; page: Page; callbacks: URL[] };

/** A new context that records the browser's arrivals at the RP's redirect URI. */
export async function openSession(browser: Browser): Promise<BrowserSession> {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const callbacks: URL[] = [];
  // The provider's 303 to the redirect URI is recorded as the browser requests it; the host
  // does not exist, so the navigation itself fails harmlessly.
  context.on('request', (request) => {
    if (request.url().startsWith('https://rp.example.test/')) callbacks.push(new URL(request.url()));
  });
  const page = await context.newPage();
  return { context, page, callbacks };
}

/** Where a screenshot kept for review goes: test-artifacts/screens/<name>.png (the folder is made). */
export async function screenPath(name: string): Promise<string> {
  const dir = new URL('screens/', ARTIFACTS);
  await mkdir(dir, { recursive: true });
  return new URL(`${name}.png`, dir).pathname;
}

/** mocha afterEach helper: a full-page screenshot named after the failed test. */
export async function screenshotOnFailure(test: Mocha.Test | undefined, page: Page | undefined): Promise<void> {
  if (!test || test.state !== 'failed' || !page || page.isClosed()) return;
  await mkdir(ARTIFACTS, { recursive: true });
  const name = test
    .fullTitle()
    .replace(/[^a-z0-9]+/gi, '-')
    .slice(0, 120);
  await page.screenshot({ path: new URL(`${name}.png`, ARTIFACTS).pathname, fullPage: true }).catch(() => undefined);
}

/**
 * The mocha hooks every Chromium suite repeats: the file's browser is launched before its tests
 * and closed after them; the session a test opens with `open()` is screenshotted if the test
 * failed, then closed, after each test. Call it first in the describe, so that the browser
 * closes before the suite's own `after` stops the servers.
 */
export function useChromium(): { readonly browser: Browser; open: () => Promise<BrowserSession> } {
  let browser: Browser | undefined;
  let session: BrowserSession | undefined;
  before(async function () {
    browser = await launchChromium();
  });
  afterEach(async function () {
    await screenshotOnFailure(this.currentTest, session?.page);
    await session?.context.close();
    session = undefined;
  });
  after(async function () {
    await browser?.close();
  });
  const running = (): Browser => {
    if (!browser) throw new Error('Chromium is not running: call useChromium() inside a describe');
    return browser;
  };
  return {
    get browser() {
      return running();
    },
    open: async () => (session = await openSession(running())),
  };
}

/** Fills in the login page's email and password and presses Sign in. */
export async function passwordStep(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** A platform authenticator with resident keys and user verification (DevTools WebAuthn domain). */
export async function addVirtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

/** openid-client as the relying party: authorization URL (code + PKCE) and the code exchange. */
export async function relyingParty(issuer: string, clientId: string, clientSecret: string | undefined) {
  const rp = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, { execute: [client.allowInsecureRequests] });
  return {
    rp,
    authorizationUrl(extra: Record<string, string> = {}) {
      return authorizationRequest(rp, { scope: 'openid email', ...extra });
    },
    async exchange(callback: URL, verifier: string, state: string) {
      const tokens = await client.authorizationCodeGrant(rp, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        idTokenExpected: true,
      });
      return tokens.claims() as client.IDToken & { acr?: string; amr?: string[] };
    },
  };
}

/** Waits until the browser has been sent to the RP's redirect URI `count` times. */
export async function waitForCallback(session: BrowserSession, count: number, timeoutMs = 15_000): Promise<URL> {
  return eventually(
    () => {
      const callback = session.callbacks[count - 1];
      if (!callback) throw new Error(`the browser did not return to the application (at ${session.page.url()})`);
      return callback;
    },
    { timeoutMs },
  );
}

/**
 * page.goto that tolerates the one navigation it can collide with here: the browser's failing
 * trip to the made-up RP host after a sign-in (it ends on chrome-error://), which can still be
 * landing when the next goto starts.
 */
export async function goto(page: Page, url: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(url);
      return;
    } catch (error) {
      if (attempt >= 3 || !(error instanceof Error) || !/interrupted by another navigation/.test(error.message)) throw error;
      await page.waitForLoadState();
      // Interrupted by its own redirect chain (e.g. /auth → /interaction/…): it did arrive.
      if (/interrupted by another navigation to "http/.test(error.message) && new URL(page.url()).origin === new URL(url).origin) return;
    }
  }
}
