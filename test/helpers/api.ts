import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { expect } from 'chai';
import * as client from 'openid-client';
import { Browserless, signInAndConsent } from './browserless.ts';
import { createTestClient, createTestUser } from './factories.ts';
import type { TestServers } from './servers.ts';

export type TestUser = Awaited<ReturnType<typeof createTestUser>>;
export type ApiResponse = { status: number; headers: Headers; body: unknown; text: string };

const redirectUri = 'https://rp.example.test/cb';

/** A relying party (openid-client) registered on the test servers, for real tokens. */
export async function createRp(servers: TestServers, metadata: Record<string, unknown> = {}): Promise<client.Configuration> {
  const registered = await createTestClient(servers.deps, metadata);
  return client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, { execute: [client.allowInsecureRequests] });
}

/** Signs the user in through the real login and consent pages; returns the token response for the API audience. */
export async function userTokens(servers: TestServers, rp: client.Configuration, user: TestUser, apiScopes: string) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(rp, {
    redirect_uri: redirectUri,
    scope: `openid offline_access ${apiScopes}`.trim(),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    prompt: 'consent',
    resource: servers.apiUrl,
  });
  const callback = await signInAndConsent(new Browserless(servers.issuer), url, user.email, user.password);
  return client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: servers.apiUrl });
}

/** A user with roles and an access token carrying the given API scopes. */
export async function signedInUser(servers: TestServers, rp: client.Configuration, options: { roles?: string[]; scopes?: string } = {}) {
  const user = await createTestUser(servers.deps, { roles: options.roles ?? ['user'] });
  const tokens = await userTokens(servers, rp, user, options.scopes ?? 'records:read records:write');
  return { ...user, token: tokens.access_token, refreshToken: tokens.refresh_token };
}

export async function call(servers: TestServers, method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const response = await fetch(`${servers.apiUrl}${path}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/**
 * Checks responses against the published OpenAPI document: the status must be documented for
 * the operation, and the body must match the documented schema for its media type.
 */
export async function openApiChecker(servers: TestServers) {
  const document = (await (await fetch(`${servers.apiUrl}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
  };
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv2020) => Ajv2020)(ajv);
  ajv.addSchema(document, 'openapi');
  return function conforms(method: string, template: string, response: ApiResponse): void {
    const operation = document.paths[template]?.[method.toLowerCase()];
    expect(operation, `${method} ${template} is documented`).to.not.equal(undefined);
    const spec = operation?.responses[String(response.status)];
    expect(spec, `${method} ${template} documents status ${response.status}`).to.not.equal(undefined);
    const contentType = (response.headers.get('Content-Type') ?? '').split(';')[0] ?? '';
    if (!spec?.content) {
      expect(response.text, `${method} ${template} ${response.status} has no body`).to.equal('');
      return;
    }
    expect(spec.content, `${method} ${template} ${response.status} documents ${contentType}`).to.have.property(contentType);
    const escaped = template.replaceAll('~', '~0').replaceAll('/', '~1');
    const validate = ajv.getSchema(`openapi#/paths/${escaped}/${method.toLowerCase()}/responses/${response.status}/content/${contentType.replace('/', '~1')}/schema`);
    expect(validate, 'schema compiles').to.not.equal(undefined);
    if (validate && !validate(response.body)) expect.fail(`${method} ${template} ${response.status}: ${ajv.errorsText(validate.errors)}`);
  };
}
