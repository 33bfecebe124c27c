import type { Middleware } from 'koa';
import type { AnyRoute } from './define-route.ts';
import { components, type JsonSchema } from './schemas.ts';

const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

const standardProblems: Record<number, string> = {
  400: 'The request is not valid (see `errors`).',
  401: 'No valid access token (`WWW-Authenticate: Bearer error="invalid_token"`).',
  403: 'A scope is missing (`WWW-Authenticate: Bearer error="insufficient_scope"`) or the roles lack the permission.',
  404: 'Not found, or not visible to the caller.',
  409: 'The change conflicts with the current state.',
  413: 'The request body is larger than allowed.',
  415: 'The request body is not JSON.',
  422: 'The request is well-formed but cannot be applied.',
  500: 'Internal error; details are logged, never sent.',
};

function parameters(location: 'path' | 'query', schema: JsonSchema | undefined) {
  if (!schema) return [];
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: location,
    required: location === 'path' || required.has(name),
    schema: property,
  }));
}

/**
 * The OpenAPI 3.1 document, assembled from the same route definitions that drive validation
 * and authorization, so it cannot drift from what the API enforces.
 */
export function buildOpenApiDocument(
  routes: readonly AnyRoute[],
  { issuer, apiUrl, version }: { issuer: string; apiUrl: string; version: string },
) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(route.responses)) {
      // eslint-disable-next-line security/detect-object-injection -- status is a key of the route table written in src/api/routes, never request input
      responses[status] = spec.schema
        ? { description: spec.description, content: { 'application/json': { schema: { $ref: `#/components/schemas/${spec.schema}` } } } }
        : { description: spec.description };
    }
    const problems = [
      400,
      401,
      500,
      ...(route.scopes.length > 0 || route.permission ? [403] : []),
      ...(route.body ? [413, 415] : []),
      ...(route.problems ?? []),
    ];
    // eslint-disable-next-line security/detect-object-injection -- numeric status codes from the route table and this list
    for (const status of problems) responses[String(status)] ??= problemResponse(standardProblems[status] ?? 'Error.');
    (paths[route.path] ??= {})[route.method] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: route.tags,
      security: [{ oidc: [...route.scopes] }],
      ...(route.permission ? { 'x-permission': route.permission } : {}),
      parameters: [...parameters('path', route.params), ...parameters('query', route.query)],
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: route.body } } } } : {}),
      responses,
    };
  }
  paths['/healthz'] = {
    get: {
      operationId: 'health',
      summary: 'Liveness probe',
      tags: ['operations'],
      security: [],
      responses: {
        200: { description: 'The process is alive.', content: { 'application/json': { schema: { $ref: '#/components/schemas/Health' } } } },
      },
    },
  };
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Portcullis resource API',
      version,
      description:
        "Protected by OAuth 2.0 JWT access tokens (RFC 9068) from the Portcullis issuer, audience = this API. Every operation lists the scopes it needs; `x-permission` names the permission the caller's roles must grant. Errors are RFC 9457 problem documents.",
    },
    servers: [{ url: apiUrl }],
    security: [{ oidc: [] }],
    tags: [
      { name: 'me', description: 'The caller' },
      { name: 'records', description: 'Encrypted personal-data vault' },
      { name: 'shares', description: 'Offers of records from other users: accept or decline' },
      { name: 'gdpr', description: 'Data export and erasure' },
      { name: 'admin', description: 'User and audit administration' },
      { name: 'operations', description: 'Probes and metadata' },
    ],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        oidc: { type: 'openIdConnect', openIdConnectUrl: `${issuer}/.well-known/openid-configuration` },
      },
    },
  };
}

/** Serves the prebuilt document at GET /openapi.json (public: it describes, it does not grant). */
export function openApiEndpoint(document: unknown): Middleware {
  const body = JSON.stringify(document);
  return async function openApiDocument(ctx, next) {
    if (ctx.path !== '/openapi.json' || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) {
      await next();
      return;
    }
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.type = 'application/json';
    ctx.body = body;
  };
}
