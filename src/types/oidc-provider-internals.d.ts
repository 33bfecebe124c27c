// oidc-provider has no exports map, so its internals can be imported; these are the ones we use
// (pinned to an exact version in package.json; test/security/path-spelling.test.ts fails loudly
// when they move). fetch_body_check.js is used by test/clients/client-fetch.test.ts only.

declare module 'oidc-provider/lib/helpers/router.js' {
  export type ProviderRoute = { name: string; path: string };
  export default class Router {
    match(method: string, path: string): { route: ProviderRoute; params: Record<string, string> } | undefined;
    get(name: string, path: string, ...middleware: unknown[]): this;
    post(name: string, path: string, ...middleware: unknown[]): this;
    put(name: string, path: string, ...middleware: unknown[]): this;
    delete(name: string, path: string, ...middleware: unknown[]): this;
    options(name: string, path: string, ...middleware: unknown[]): this;
  }
}

declare module 'oidc-provider/lib/helpers/weak_cache.js' {
  import type Router from 'oidc-provider/lib/helpers/router.js';
  /** The provider's private state; `router` is its own route matcher. */
  export default function instance(provider: object): { router?: Router } | undefined;
}

declare module 'oidc-provider/lib/helpers/fetch_body_check.js' {
  /** Reads a fetched client document's body within the configured fetchResponseBodyLimits[purpose]. */
  export default function fetchBodyCheck(provider: object, purpose: string, response: Response): Promise<Buffer>;
}
