/**
 * The one error type of our own code: an RFC 9457 problem. oidc-provider's OAuth errors are
 * left to the provider; everything we throw is a Problem and rendered by koa-problem-handler.
 */
export type ProblemInit = {
  status: number;
  type: string;
  title: string;
  detail?: string;
  /** Extra members sent to the client (RFC 9457 §3.2). */
  extensions?: Record<string, unknown>;
  /** Response headers, e.g. WWW-Authenticate or Retry-After. */
  headers?: Record<string, string>;
  cause?: unknown;
};

export class Problem extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  /** Client errors are shown as they are; server errors only by title. */
  readonly expose: boolean;

  constructor(init: ProblemInit) {
    // A client error is an expected answer, not a fault: capturing its stack would make refusing
    // a request (bad token, missing scope) cost more than serving it. Server errors keep theirs.
    const stackTraceLimit = Error.stackTraceLimit;
    if (init.status < 500) Error.stackTraceLimit = 0;
    super(init.detail ?? init.title, { cause: init.cause });
    Error.stackTraceLimit = stackTraceLimit;
    this.name = 'Problem';
    this.status = init.status;
    this.type = init.type;
    this.title = init.title;
    this.detail = init.detail;
    this.extensions = init.extensions ?? {};
    this.headers = init.headers ?? {};
    this.expose = init.status < 500;
  }
}

/** RFC 9457 `type` URIs are URNs: stable identifiers that need no documentation host. */
export const problemType = (slug: string): string => `urn:portcullis:problem:${slug}`;

export type ProblemJson = {
  type: string;
  title: string;
  status: number;
  detail?: string;
  [extension: string]: unknown;
};

export function toProblemJson(problem: Problem): ProblemJson {
  return {
    ...problem.extensions,
    type: problem.type,
    title: problem.title,
    status: problem.status,
    ...(problem.detail !== undefined && problem.expose ? { detail: problem.detail } : {}),
  };
}

const bearer = (params: Record<string, string>): string =>
  `Bearer ${Object.entries({ realm: 'portcullis', ...params })
    .map(([k, v]) => `${k}="${v.replace(/["\\]/g, '')}"`)
    .join(', ')}`;

export const badRequest = (detail: string, extensions?: Record<string, unknown>): Problem =>
  new Problem({
    status: 400,
    type: problemType('invalid-request'),
    title: 'Invalid request',
    detail,
    ...(extensions ? { extensions } : {}),
  });

export const notFound = (detail = 'The requested resource does not exist.'): Problem =>
  new Problem({ status: 404, type: problemType('not-found'), title: 'Not found', detail });

export const invalidToken = (detail: string, challenge: Record<string, string> = {}): Problem =>
  new Problem({
    status: 401,
    type: problemType('invalid-token'),
    title: 'Invalid access token',
    detail,
    headers: { 'WWW-Authenticate': bearer({ ...challenge, error: 'invalid_token', error_description: detail }) },
  });

export const missingToken = (challenge: Record<string, string> = {}): Problem =>
  new Problem({
    status: 401,
    type: problemType('missing-token'),
    title: 'Authentication required',
    detail: 'Send an access token in the Authorization header (Bearer).',
    // RFC 6750 §3.1: no error code when the request carried no credentials at all.
    headers: { 'WWW-Authenticate': bearer(challenge) },
  });

export const insufficientScope = (scope: string, challenge: Record<string, string> = {}): Problem =>
  new Problem({
    status: 403,
    type: problemType('insufficient-scope'),
    title: 'Insufficient scope',
    detail: `This request needs the scope "${scope}".`,
    headers: { 'WWW-Authenticate': bearer({ ...challenge, error: 'insufficient_scope', scope }) },
  });

/**
 * RFC 9470 step-up: the token is valid, but the sign-in behind it was weaker than the request
 * needs; the client asks the user to sign in again with `acr_values` (R15).
 */
export const insufficientUserAuthentication = (acrValues: string, detail: string, challenge: Record<string, string> = {}): Problem =>
  new Problem({
    status: 401,
    type: problemType('insufficient-user-authentication'),
    title: 'Stronger authentication required',
    detail,
    extensions: { error: 'insufficient_user_authentication', acr_values: acrValues },
    headers: {
      'WWW-Authenticate': bearer({
        ...challenge,
        error: 'insufficient_user_authentication',
        error_description: detail,
        acr_values: acrValues,
      }),
    },
  });

export const forbidden = (permission: string): Problem =>
  new Problem({
    status: 403,
    type: problemType('forbidden'),
    title: 'Forbidden',
    detail: `This request needs the permission "${permission}".`,
  });

export const payloadTooLarge = (limit: number): Problem =>
  new Problem({
    status: 413,
    type: problemType('payload-too-large'),
    title: 'Payload too large',
    detail: `The body may be at most ${limit} bytes.`,
  });

export const serviceUnavailable = (cause?: unknown): Problem =>
  new Problem({
    status: 503,
    type: problemType('unavailable'),
    title: 'Service temporarily unavailable',
    headers: { 'Retry-After': '5' },
    cause,
  });

export const internalError = (cause?: unknown): Problem =>
  new Problem({ status: 500, type: problemType('internal'), title: 'Internal server error', cause });
