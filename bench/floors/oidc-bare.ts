import { readFileSync } from 'node:fs';
import Provider, { type Configuration } from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';
import { withReuseDetection } from '../../src/auth/refresh-reuse.ts';
import { createRedisStateStore } from '../../src/store/oidc-adapter-redis.ts';
import { createRedis } from '../../src/store/redis.ts';

/**
 * Floor for scenarios 1–3, 5 and 6: oidc-provider with nothing of ours but the same protocol
 * settings (PKCE, rotation, resource indicators → ES256 JWT access tokens, introspection,
 * device flow), the same private JWKS, static clients, and either its in-memory adapter or our
 * Redis adapter (BENCH_STORAGE=memory|redis). Interactions log in a fixed account with no
 * password check and grant whatever is asked: the flow minus our sign-in work.
 */
const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const apiUrl = process.env.BENCH_API_URL ?? '';
const jwks = JSON.parse(readFileSync(process.env.BENCH_JWKS_FILE ?? '', 'utf8')) as Configuration['jwks'];
const clients = JSON.parse(process.env.BENCH_CLIENTS ?? '[]') as Configuration['clients'];
const storage = process.env.BENCH_STORAGE ?? 'memory';
const API_SCOPES = ['records:read', 'records:write', 'admin'];

// oidc-provider's memory adapter keeps an LRU of 1000 entries per provider, fewer than one
// scenario writes: with eviction the floor loses grants and tokens mid-run ("grant not found").
// Same adapter code over a store that does not evict.
const memoryStore = new LRU({ maxSize: 50_000_000 });

const redis =
  storage === 'redis'
    ? createRedis({
        redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
        redisKeyPrefix: process.env.REDIS_KEY_PREFIX ?? 'bench:floor:',
      })
    : undefined;

const configuration: Configuration = {
  adapter: (name: string) =>
    redis ? withReuseDetection((model) => createRedisStateStore(redis, model))(name) : new MemoryAdapter(name, memoryStore),
  jwks,
  clients,
  cookies: {
    keys: ['bench-floor-cookie-key-0123456789abcdef'],
    long: { signed: true, httpOnly: true, sameSite: 'lax' },
    short: { signed: true, httpOnly: true, sameSite: 'lax' },
  },
  findAccount: (_ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, email: 'bench@example.test', email_verified: false, name: 'Bench Person' }),
  }),
  claims: {
    openid: ['sub', 'acr', 'amr', 'auth_time'],
    profile: ['name', 'updated_at'],
    email: ['email', 'email_verified'],
    sid: null,
    iss: null,
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', ...API_SCOPES],
  responseTypes: ['code', 'none'],
  pkce: { required: () => true },
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: 600,
    ClientCredentials: 600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 1209600,
    Session: 1209600,
    Interaction: 3600,
    Grant: 1209600,
    DeviceCode: 600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    deviceFlow: { enabled: true, charset: 'base-20', mask: '****-****' },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf ?? undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({
        scope: API_SCOPES.join(' '),
        audience: apiUrl,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
};

const provider = new Provider(issuer, configuration);

const page = (uid: string, action: string, fields: string) =>
  `<!doctype html><html><body><form method="post" action="/interaction/${uid}/${action}"><input type="hidden" name="csrf" value="x">${fields}<button>go</button></form></body></html>`;

async function drain(req: NodeJS.ReadableStream): Promise<void> {
  for await (const _ of req) {
    // discard the form: the floor checks nothing
  }
}

provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(?:\/(login|confirm))?$/.exec(ctx.path);
  if (!match) {
    await next();
    return;
  }
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const uid = details.uid;
  if (ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body =
      details.prompt.name === 'login'
        ? page(uid, 'login', '<input name="email"><input name="password" type="password">')
        : page(uid, 'confirm', '');
    return;
  }
  await drain(ctx.req);
  let result: Parameters<typeof provider.interactionResult>[2];
  if (match[2] === 'login') {
    result = { login: { accountId: 'bench-user', amr: ['pwd'], acr: 'urn:portcullis:loa:1' } };
  } else {
    const { session, params, prompt } = details;
    const accountId = session?.accountId ?? '';
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: String(params.client_id) });
    if (!grant) throw new Error('grant not found');
    const missing = prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
      grant.addResourceScope(indicator, scopes.join(' '));
    result = { consent: { grantId: await grant.save() } };
  }
  const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(redirectTo);
});

provider.listen(port, '127.0.0.1');
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void redis?.quit();
  process.exit(0);
});
