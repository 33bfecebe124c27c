import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { expect } from 'chai';
import * as client from 'openid-client';
import { generate } from 'otplib';
import { Browserless } from './browserless.ts';
import { createTestClient, createTestUser } from './factories.ts';
import { authorizationRequest } from './oidc.ts';
import { signIn } from './sign-in.ts';
import type { TestServers } from './servers.ts';

export type TestUser = Awaited<ReturnType<typeof createTestUser>>;
export type ApiResponse = { status: number; headers: Headers; body: unknown; text: string };

/** A relying party (openid-client) registered on the test servers, for real tokens. */
export async function createRp(servers: TestServers, metadata: Record<string, unknown> = {}): Promise<client.Configuration> {
  const registered = await createTestClient(servers.deps, metadata);
  return client.discovery(new URL(servers.issuer), registered.client_id, registered.client_secret, undefined, {
    execute: [client.allowInsecureRequests],
  });
}

/**
 * Enrolls a TOTP authenticator the way the account page does (begin + confirm with a real code);
 * roles such as admin and auditor must pass a second factor at sign-in.
 */
export async function enrollTotp(servers: TestServers, user: TestUser): Promise<string> {
  const enrollment = await servers.deps.mfa.totp.begin(user.id, user.email, 'test');
  if (!enrollment) throw new Error('TOTP enrollment did not start');
  if (!(await servers.deps.mfa.totp.confirm(user.id, await generate({ secret: enrollment.secret }), 'test')))
    throw new Error('TOTP enrollment failed');
  return enrollment.secret;
}

/** Signs the user in through the real login (and MFA) and consent pages; returns the token response for the API audience. */
export async function userTokens(
  servers: TestServers,
  rp: client.Configuration,
  user: TestUser,
  apiScopes: string,
  totpSecret?: string,
  options: { browser?: Browserless; params?: Record<string, string> } = {},
) {
  const { url, verifier, state } = await authorizationRequest(rp, {
    scope: `openid offline_access ${apiScopes}`.trim(),
    prompt: 'consent',
    resource: servers.apiUrl,
    ...options.params,
  });
  const callback = await signIn(options.browser ?? new Browserless(servers.issuer), url, user, totpSecret ? { totpSecret } : {});
  return client.authorizationCodeGrant(rp, callback, { pkceCodeVerifier: verifier, expectedState: state }, { resource: servers.apiUrl });
}

/** A user with roles and an access token carrying the given API scopes. */
export async function signedInUser(servers: TestServers, rp: client.Configuration, options: { roles?: string[]; scopes?: string } = {}) {
  const user = await createTestUser(servers.deps, { roles: options.roles ?? ['user'] });
  const totpSecret = (await servers.deps.mfa.roleRequiresMfa(user.id)) ? await enrollTotp(servers, user) : undefined;
  const tokens = await userTokens(servers, rp, user, options.scopes ?? 'records:read records:write', totpSecret);
  return { ...user, token: tokens.access_token, refreshToken: tokens.refresh_token };
}

export async function call(
  servers: TestServers,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
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
    const validate = ajv.getSchema(
      `openapi#/paths/${escaped}/${method.toLowerCase()}/responses/${response.status}/content/${contentType.replace('/', '~1')}/schema`,
    );
    expect(validate, 'schema compiles').to.not.equal(undefined);
    if (validate && !validate(response.body)) expect.fail(`${method} ${template} ${response.status}: ${ajv.errorsText(validate.errors)}`);
  };
}
