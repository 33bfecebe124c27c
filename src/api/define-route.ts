import Router from '@koa/router';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { Context, Middleware } from 'koa';
import type { RbacService, Subject } from '../services/rbac.ts';
import { jsonNestingExceeds, MAX_JSON_DEPTH } from '../shared/json-nesting.ts';
import { canonicalUuid, UUID_PATTERN } from '../shared/uuid.ts';
import { acrRank } from '../services/mfa-policy.ts';
import {
  badRequest,
  forbidden,
  insufficientScope,
  insufficientUserAuthentication,
  invalidToken,
  payloadTooLarge,
  Problem,
  problemType,
} from '../shared/problem.ts';
import type { AccessTokenClaims, AuthState } from './koa-bearer-auth.ts';
import type { JsonSchema } from './schemas.ts';

export type HttpMethod = 'get' | 'post' | 'patch' | 'put' | 'delete';

/** Who is calling: the token, its scopes, and (for user tokens) the user's roles and permissions. */
export type RouteAuth = { token: AccessTokenClaims; scopes: ReadonlySet<string>; subject: Subject | undefined };

export type RouteInput<P, Q, B> = { params: P; query: Q; body: B; auth: RouteAuth; ctx: Context };
export type RouteResult = { status?: number; body?: unknown; headers?: Record<string, string> };

export type ResponseSpec = { description: string; schema?: string };

export type RouteDefinition<P = Record<string, never>, Q = Record<string, never>, B = undefined> = {
  operationId: string;
  method: HttpMethod;
  /** OpenAPI path template, e.g. `/v1/records/{id}`. */
  path: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Every scope listed must be granted to the token (403 insufficient_scope otherwise). */
  scopes: readonly string[];
  /** Permission the user's roles must grant (403 problem otherwise); client tokens have none. */
  permission?: string;
  params?: JsonSchema;
  query?: JsonSchema;
  body?: JsonSchema;
  /** Largest accepted request body in bytes (413 above it). */
  maxBodyBytes?: number;
  /** Success responses by status; error responses are added to the document automatically. */
  responses: Record<number, ResponseSpec>;
  /** Statuses of extra problem responses this route can produce (404, 409, 422 …). */
  problems?: number[];
  handler(input: RouteInput<P, Q, B>): Promise<RouteResult>;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the route table holds routes of every input type
export type AnyRoute = RouteDefinition<any, any, any>;

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/** Keeps the input types of one route while collecting it into a table of routes. */
export const defineRoute = <P = Record<string, never>, Q = Record<string, never>, B = undefined>(
  route: RouteDefinition<P, Q, B>,
): RouteDefinition<P, Q, B> => route;

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
/** Bodies are taken as sent (no coercion); path and query strings are coerced to the declared types. */
const bodyAjv = addFormats(new Ajv2020({ allErrors: true, strict: true, useDefaults: false }));
const stringAjv = addFormats(new Ajv2020({ allErrors: true, strict: true, coerceTypes: true, useDefaults: true }));
// ajv-formats' uuid also takes a `urn:uuid:` prefix; ours is the hyphenated form only (R15).
for (const ajv of [bodyAjv, stringAjv]) ajv.addFormat('uuid', UUID_PATTERN);

/**
 * The top-level properties a schema declares as UUIDs. After validation their values are
 * lowercased (src/shared/uuid.ts, R15): handlers compare ids as strings.
 */
function uuidProperties(schema: JsonSchema | undefined): string[] {
  const properties = (schema?.properties ?? {}) as Record<string, { format?: unknown }>;
  return Object.entries(properties)
    .filter(([, property]) => property.format === 'uuid')
    .map(([name]) => name);
}

function lowercaseUuids(value: unknown, names: readonly string[]): void {
  if (names.length === 0 || typeof value !== 'object' || value === null) return;
  const fields = value as Record<string, unknown>;
  for (const name of names) {
    // eslint-disable-next-line security/detect-object-injection -- name is a property the route's own schema declares
    const text = fields[name];
    // eslint-disable-next-line security/detect-object-injection -- as above
    if (typeof text === 'string') fields[name] = canonicalUuid(text) ?? text;
  }
}

function toErrors(part: string, errors: ErrorObject[] | null | undefined): { pointer: string; detail: string }[] {
  return (errors ?? []).slice(0, 20).map((e) => {
    const extra = e.keyword === 'additionalProperties' ? `/${(e.params as { additionalProperty: string }).additionalProperty}` : '';
    return {
      pointer: `/${part}${e.instancePath}${extra}`,
      detail: e.keyword === 'additionalProperties' ? 'is not a known field' : (e.message ?? 'is invalid'),
    };
  });
}

function validator(ajv: Ajv2020, part: string, schema: JsonSchema | undefined): (value: unknown) => void {
  if (!schema) return () => undefined;
  const validate: ValidateFunction = ajv.compile(schema);
  return (value) => {
    if (!validate(value)) throw badRequest(`The request ${part} is not valid.`, { errors: toErrors(part, validate.errors) });
  };
}

async function readJsonBody(ctx: Context, limit: number): Promise<unknown> {
  const declared = Number(ctx.get('Content-Length') || '0');
  if (declared > limit) throw payloadTooLarge(limit);
  if (!ctx.request.is('application/json')) {
    throw new Problem({
      status: 415,
      type: problemType('unsupported-media-type'),
      title: 'Unsupported media type',
      detail: 'Send the body as application/json.',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw payloadTooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  const raw = Buffer.concat(chunks);
  // Before parsing: a value nested deeper than anything the routes take is refused (R15).
  if (jsonNestingExceeds(raw))
    throw badRequest(`The request body is nested more than ${MAX_JSON_DEPTH} levels deep.`, {
      errors: [{ pointer: '/body', detail: `is nested more than ${MAX_JSON_DEPTH} levels deep` }],
    });
  try {
    return JSON.parse(raw.toString('utf8')) as unknown;
  } catch {
    throw badRequest('The request body is not valid JSON.');
  }
}

/** RFC 9449 §7.1: a DPoP-bound token is challenged with the DPoP scheme. */
function forScheme(token: AccessTokenClaims, problem: Problem): Problem {
  const challenge = problem.headers['WWW-Authenticate'];
  if (token.cnf?.jkt && challenge) problem.headers['WWW-Authenticate'] = challenge.replace(/^Bearer /, 'DPoP ');
  return problem;
}

const koaPath = (template: string): string => template.replace(/\{(\w+)\}/g, ':$1');

/**
 * Turns route definitions into one router. Each route runs the same pipeline, in this order:
 * scopes → subject (account still active) → permission (and the sign-in strength the user's
 * roles require) → params/query → body → handler.
 */
export function mountRoutes(routes: readonly AnyRoute[], { rbac }: { rbac: RbacService }): Router {
  const router = new Router();
  for (const route of routes) {
    const checkParams = validator(stringAjv, 'path', route.params);
    const checkQuery = validator(stringAjv, 'query', route.query);
    const checkBody = validator(bodyAjv, 'body', route.body);
    const maxBody = route.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const paramUuids = uuidProperties(route.params);
    const bodyUuids = uuidProperties(route.body);

    /** OAuth scopes: what the user allowed this client to do. */
    const checkScopes = ({ token, scopes }: AuthState): void => {
      if (route.scopes.every((s) => scopes.has(s))) return;
      throw forScheme(token, insufficientScope(route.scopes.join(' ')));
    };
    /** Roles: what the user may do at all; a disabled or erased account loses access at once. */
    const checkPermission = async ({ token, scopes }: AuthState): Promise<RouteAuth> => {
      const isUser = token.sub !== token.client_id;
      const subject = isUser ? await rbac.subject(token.sub) : undefined;
      if (subject && !subject.active) throw invalidToken('The account of this token is disabled.');
      // Issued before the account's sessions were ended (sign out everywhere, a password change
      // that signed out the others, an MFA reset, disabling): its grant was revoked then, and it
      // stays refused if the account is enabled again before it expires (R13).
      if (subject && !subject.tokenCounts(token.iat))
        throw invalidToken('This access token was issued before the account was signed out everywhere.');
      if (route.permission && !subject?.permissions.has(route.permission)) throw forbidden(route.permission);
      // The user's roles require a second factor, and this token's sign-in had none: a role
      // granted (or a role's policy raised) after that sign-in. RFC 9470 step-up (R15).
      const required = subject?.requiredAcr;
      if (route.permission && required && acrRank(token.acr) < acrRank(required))
        throw forScheme(
          token,
          insufficientUserAuthentication(required, "This request needs a sign-in with a second factor: your account's roles require one."),
        );
      return { token, scopes, subject };
    };
    // One middleware per route, the steps in order (a layer per step cost a composed chain per request).
    const pipeline: Middleware = async function serveRoute(ctx) {
      const auth = ctx.state.auth as AuthState;
      checkScopes(auth);
      const routeAuth = await checkPermission(auth);
      // Input validation, then the handler.
      const params = { ...(ctx.params as Record<string, string>) };
      checkParams(params);
      lowercaseUuids(params, paramUuids);
      const query = { ...ctx.query };
      checkQuery(query);
      let body: unknown = undefined;
      if (route.body) {
        body = await readJsonBody(ctx, maxBody);
        checkBody(body);
        lowercaseUuids(body, bodyUuids);
      }
      const result = await route.handler({ params, query, body, auth: routeAuth, ctx });
      ctx.set('Cache-Control', 'no-store');
      if (result.headers) ctx.set(result.headers);
      ctx.status = result.status ?? 200;
      if (result.body !== undefined) ctx.body = result.body;
    };
    router.register(koaPath(route.path), [route.method.toUpperCase()], pipeline, { name: route.operationId });
  }
  return router;
}
