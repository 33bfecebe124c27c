import { expect } from 'chai';
import { Browserless, formOf } from './browserless.ts';
import type { relyingParty } from './browser.ts';
import type { ReceivedMail, TestSmtpServer } from './smtp.ts';
import { eventually } from './wait.ts';

export type Rp = Awaited<ReturnType<typeof relyingParty>>;

/** The six-digit code of a code mail, from its text part (the line that holds only the code). */
export function codeOf(mail: ReceivedMail): string {
  const code = /^\s*(\d{6})\s*$/m.exec(mail.text)?.[1];
  if (!code) throw new Error(`no code in the mail "${mail.subject}"`);
  return code;
}

/** A page's text as compared between two flows: the interaction's uid and the form tokens differ, nothing else may. */
export const comparable = (html: string): string =>
  html.replace(/\/interaction\/[\w-]+/g, '/interaction/UID').replace(/name="csrf" value="[^"]+"/g, 'name="csrf" value="X"');

/** A relying party's authorization in a fresh browser, up to the login page. */
export async function openLoginPage(issuer: string, rp: Rp, extra: Record<string, string> = {}) {
  const browser = new Browserless(issuer);
  const flow = await rp.authorizationUrl(extra);
  const { response, url } = await browser.follow(flow.url);
  expect(url.pathname).to.match(/^\/interaction\/[\w-]+$/);
  return { browser, flow, html: await response.text(), url };
}

/** From the login page, "Create an account", then the form sent; returns the page it leads to. */
export async function submitSignUp(
  browser: Browserless,
  loginHtml: string,
  fields: { email: string; password: string; confirm?: string },
  extraHeaders: Record<string, string> = {},
): Promise<{ response: Response; url: URL; html: string }> {
  const href = /<a href="([^"]+\/sign-up)">Create an account<\/a>/.exec(loginHtml)?.[1];
  if (!href) throw new Error('no "Create an account" link on the login page');
  const page = await browser.follow(href);
  expect(page.response.status).to.equal(200);
  const form = formOf(await page.response.text(), '/sign-up');
  const { response, url } = await browser.submit(
    form.action,
    { csrf: form.csrf, email: fields.email, password: fields.password, confirm_password: fields.confirm ?? fields.password },
    extraHeaders,
  );
  return { response, url, html: await response.text() };
}

/** Enters a code on a code page (the form ending in `suffix`); returns where it led. */
export async function submitCode(browser: Browserless, html: string, code: string, suffix = '/sign-up/verify') {
  const form = formOf(html, suffix);
  const { response, url } = await browser.submit(form.action, { csrf: form.csrf, code });
  return { response, url, html: url.origin === browser.origin ? await response.text() : '' };
}

/** Allows the consent page if it is shown; returns the URL the provider sent back to the RP. */
export async function consentIfAsked(browser: Browserless, at: { url: URL; html: string }): Promise<URL> {
  if (at.url.origin !== browser.origin) return at.url;
  expect(at.html, `expected the consent page at ${at.url.pathname}`).to.include('/confirm');
  const consent = formOf(at.html, '/confirm');
  return (await browser.submit(consent.action, { csrf: consent.csrf })).url;
}

/** The `n`th mail to `address` (1-based), waiting up to 10 s for it. */
export async function nthMailTo(smtp: TestSmtpServer, address: string, n: number): Promise<ReceivedMail> {
  return eventually(() => smtp.mailsTo(address)[n - 1] ?? false, { timeoutMs: 10_000, message: `no mail number ${n} to ${address}` });
}
