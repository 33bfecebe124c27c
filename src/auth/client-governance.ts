import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Context } from 'koa';
import type { AuditService } from '../services/audit.ts';
import { isHashedSecret, verifyClientSecret } from '../shared/client-secret.ts';
import type { Logger } from '../shared/logger.ts';
import { jsonNestingExceeds, MAX_JSON_DEPTH } from '../shared/json-nesting.ts';
import { PROVIDER_BODY_LIMIT, readBodyAhead, replaceBodyAhead } from '../shared/read-body-ahead.ts';
import type { ClientStore } from '../store/clients.ts';
import type { InitialAccessTokenStore } from '../store/initial-access-tokens.ts';
import type { Adapter } from '../store/oidc-adapter.ts';
import { providerRouteOf } from './provider-routes.ts';

/** The request being served by oidc-provider (its AsyncLocalStorage), if any. */
const currentContext = (): KoaContextWithOIDC | undefined => (Provider as unknown as { ctx?: KoaContextWithOIDC }).ctx;

function parseJsonObject(raw: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(raw.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Client adapter, so a client stored by the registration endpoint records which initial
 * access token made it (oauth_clients.created_by = "iat:<id>"), inside the same request and
 * before the response is sent.
 */
export function withRegistrationProvenance(inner: Adapter, clients: ClientStore): Adapter {
  return {
    ...inner,
    async upsert(id, payload, expiresIn) {
      await inner.upsert(id, payload, expiresIn);
      const iat = currentContext()?.oidc.entities.InitialAccessToken;
      if (iat?.jti) await clients.setCreatedBy(id, `iat:${iat.jti}`);
    },
  };
}

/**
 * Provider events for client governance: audit registrations (RFC 7591/7592), give back an
 * initial access token use when a registration was refused, and note when a client last got
 * a token (at most once an hour per client and process) for idle-client disabling.
 */
export function attachClientGovernance(
  provider: Provider,
  {
    clients,
    initialAccessTokens,
    audit,
    logger,
  }: { clients: ClientStore; initialAccessTokens: InitialAccessTokenStore; audit: AuditService; logger: Logger },
): void {
  const lastTouch = new Map<string, number>();
  const background = (what: string, promise: Promise<unknown>): void => {
    promise.catch((error: unknown) => {
      logger.warn({ err: error }, `${what} failed`);
    });
  };
  const who = (ctx: KoaContextWithOIDC) => ({ ip: ctx.ip, userAgent: ctx.get('User-Agent') });

  // Stored secrets are hashes (src/store/clients.ts): oidc-provider's plain comparison is
  // replaced by a constant-time hash comparison, and a hash never leaves in an RFC 7592 response.
  const clientPrototype = provider.Client.prototype as unknown as { clientSecret?: string; compareClientSecret(actual: string): boolean };
  clientPrototype.compareClientSecret = function compareClientSecret(this: { clientSecret?: string }, actual: string): boolean {
    return verifyClientSecret(this.clientSecret, actual);
  };
  // RFC 7592 §2.2: an update carries the client's full metadata, including its current secret.
  // oidc-provider compares that with the stored value, which is our hash, so the real secret was
  // refused (and the hash accepted). The body is read ahead: the exact current secret is taken out
  // (the provider then keeps the stored one), the stored hash is replaced by a value that never
  // matches, and anything else is left for the provider to refuse (R11).
  const routeOf = providerRouteOf(provider);
  // The JSON bodies the provider parses (RFC 7591 registration, RFC 7592 update) have the API's
  // nesting limit (R15): refused before anything parses them. The body is put back for the provider.
  provider.use(async function limitJsonNesting(ctx, next) {
    const route = routeOf(ctx.method, ctx.path);
    if ((route?.name === 'registration' || route?.name === 'client_update') && ctx.is('application/json')) {
      const raw = await readBodyAhead(ctx.req, PROVIDER_BODY_LIMIT);
      if (typeof raw !== 'string' && jsonNestingExceeds(raw))
        throw new errors.InvalidClientMetadata(`the metadata is nested more than ${MAX_JSON_DEPTH} levels deep`);
    }
    await next();
  });
  provider.use(async function acceptEchoedClientSecret(ctx, next) {
    await adjustEchoedSecret(ctx);
    await next();
  });
  async function adjustEchoedSecret(ctx: Context): Promise<void> {
    const route = routeOf(ctx.method, ctx.path);
    if (route?.name !== 'client_update' || !ctx.is('application/json')) return;
    // Anything but a body read whole is left to the provider, which refuses it with invalid_request.
    const raw = await readBodyAhead(ctx.req, PROVIDER_BODY_LIMIT);
    if (typeof raw === 'string') return;
    const body = parseJsonObject(raw);
    const presented = body?.client_secret;
    if (!body || typeof presented !== 'string') return;
    const stored = (await provider.Client.find(route.params.clientId ?? ''))?.clientSecret;
    if (!stored || !isHashedSecret(stored)) return;
    if (verifyClientSecret(stored, presented)) delete body.client_secret;
    else if (presented === stored) body.client_secret = '';
    else return;
    // JSON.stringify throws (RangeError) on nesting JSON.parse accepted: such a body goes on as it
    // came, and the provider refuses it like any other bad metadata (a 500 before; R12).
    let rewritten: string;
    try {
      rewritten = JSON.stringify(body);
    } catch {
      return;
    }
    replaceBodyAhead(ctx.req, Buffer.from(rewritten));
  }

  provider.use(async function hideSecretHashes(ctx, next) {
    await next();
    const body = ctx.body as { client_secret?: unknown } | undefined;
    if (typeof body?.client_secret === 'string' && isHashedSecret(body.client_secret)) {
      const { client_secret: _hash, ...rest } = body;
      ctx.body = rest;
    }
  });

  // RFC 6749 §5.2 (and docs/security.md T23): a grant type the client is not registered for is
  // `unauthorized_client`; oidc-provider says invalid_request. Same status (400), clearer code.
  provider.use(async function unauthorizedClientCode(ctx, next) {
    await next();
    const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
    if (
      ctx.status === 400 &&
      body?.error === 'invalid_request' &&
      typeof body.error_description === 'string' &&
      /^(requested grant type|\S+) is not allowed for this client$/.test(body.error_description)
    ) {
      ctx.body = { ...body, error: 'unauthorized_client' };
    }
  });

  provider.on('registration_create.error', (ctx: KoaContextWithOIDC) => {
    const iat = ctx.oidc.entities.InitialAccessToken;
    if (iat?.jti) background('releasing an initial access token use', initialAccessTokens.release(iat.jti));
  });
  provider.on('registration_create.success', (ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    const iat = ctx.oidc.entities.InitialAccessToken;
    background(
      'audit',
      audit.record({ type: 'client.registered', clientId: client.clientId, ...who(ctx), data: { initial_access_token: iat?.jti } }),
    );
  });
  provider.on('registration_update.success', (ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    background('audit', audit.record({ type: 'client.updated', clientId: client.clientId, ...who(ctx) }));
  });
  provider.on('registration_delete.success', (ctx: KoaContextWithOIDC, client: { clientId: string }) => {
    background('audit', audit.record({ type: 'client.deleted', clientId: client.clientId, ...who(ctx) }));
  });
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const clientId = ctx.oidc.client?.clientId;
    if (!clientId) return;
    const now = Date.now();
    if ((lastTouch.get(clientId) ?? 0) > now - 3_600_000) return;
    lastTouch.set(clientId, now);
    if (lastTouch.size > 10_000) lastTouch.clear();
    background('recording client use', clients.touch(clientId));
  });
}
