/**
 * A minimal browser over fetch for protocol tests: a cookie jar with path scoping, manual
 * redirects, and form helpers for our interaction pages. Real browsers are driven in test/e2e.
 */
type Cookie = { name: string; value: string; path: string };

export class CookieJar {
  readonly cookies = new Map<string, Cookie>();

  store(response: Response): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = header.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const attr = Object.fromEntries(
        attributes.map((a) => {
          const i = a.indexOf('=');
          return i === -1 ? [a.toLowerCase(), ''] : [a.slice(0, i).toLowerCase(), a.slice(i + 1)];
        }),
      );
      const path = attr.path ?? '/';
      const key = `${name};${path}`;
      const expired = attr['max-age'] === '0' || (attr.expires && Date.parse(attr.expires) < Date.now());
      if (expired || value === '') this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path });
    }
  }

  header(url: URL): string {
    return [...this.cookies.values()]
      .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

export class Browserless {
  readonly jar = new CookieJar();
  readonly origin: string;

  constructor(origin: string) {
    this.origin = origin;
  }

  /** The provider's session id: the value of the portcullis.session cookie ('' when signed out). */
  get sessionId(): string {
    return this.jar.cookies.get('portcullis.session;/')?.value ?? '';
  }

  async request(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const target = new URL(url, this.origin);
    const headers = new Headers(init.headers);
    if (!headers.has('Accept')) headers.set('Accept', 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8');
    const cookie = this.jar.header(target);
    if (cookie && target.origin === this.origin) headers.set('Cookie', cookie);
    const response = await fetch(target, { ...init, headers, redirect: 'manual' });
    if (target.origin === this.origin) this.jar.store(response);
    return response;
  }

  /** Follows redirects on the issuer; stops at the first URL outside it (the client's redirect_uri). */
  async follow(url: string | URL, init: RequestInit = {}): Promise<{ response: Response; url: URL }> {
    let current = new URL(url, this.origin);
    let response = await this.request(current, init);
    for (let hops = 0; hops < 20 && response.status >= 300 && response.status < 400; hops++) {
      const location = response.headers.get('Location');
      if (!location) break;
      current = new URL(location, current);
      if (current.origin !== this.origin) return { response, url: current };
      response = await this.request(current);
    }
    return { response, url: current };
  }

  async submit(
    action: string,
    fields: Record<string, string>,
    extraHeaders: Record<string, string> = {},
  ): Promise<{ response: Response; url: URL }> {
    return this.follow(action, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: this.origin, ...extraHeaders },
      body: new URLSearchParams(fields).toString(),
    });
  }
}

export function formOf(html: string, actionSuffix: string): { action: string; csrf: string } {
  const forms = [...html.matchAll(/<form[^>]*action="([^"]+)"[\s\S]*?<\/form>/g)];
  const form = forms.find((f) => (f[1] ?? '').endsWith(actionSuffix));
  if (!form) throw new Error(`no form ending in ${actionSuffix}`);
  const csrf = /name="csrf" value="([^"]+)"/.exec(form[0])?.[1] ?? '';
  return { action: (form[1] ?? '').replaceAll('&amp;', '&'), csrf };
}

/**
 * Passkey options as the page's script asks for them (views/static/webauthn.js): a POST with the
 * page's form token (R14).
 */
export async function passkeyOptionsOf<T>(browser: Browserless, url: string, csrf: string): Promise<T> {
  const response = await browser.request(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', Origin: browser.origin },
    body: new URLSearchParams({ csrf }).toString(),
  });
  if (response.status !== 200) throw new Error(`passkey options ${url}: ${String(response.status)}`);
  return (await response.json()) as T;
}

/** Every form of a page by the label of its button: its action and hidden fields (consent, device, logout pages). */
export function formsByButton(html: string): Map<string, { action: string; fields: Record<string, string> }> {
  const forms = new Map<string, { action: string; fields: Record<string, string> }>();
  for (const match of html.matchAll(/<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)) {
    const body = match[2] ?? '';
    const fields = Object.fromEntries(
      [...body.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']),
    );
    const button = /<button[^>]*>([^<]+)<\/button>/.exec(body)?.[1]?.trim() ?? '';
    forms.set(button, { action: (match[1] ?? '').replaceAll('&amp;', '&'), fields });
  }
  return forms;
}
