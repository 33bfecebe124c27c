import type { Knex } from 'knex';
import type { Config } from '../config/types.ts';
import type { AuditService } from '../services/audit.ts';
import type { Logger } from '../shared/logger.ts';
import type { AccountIndexStore } from '../store/account-index.ts';
import type { ClientStore } from '../store/clients.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';
import type { InitialAccessTokenStore } from '../store/initial-access-tokens.ts';
import type { Adapter, OidcStateStore } from '../store/oidc-adapter.ts';
import { createClientAdapter } from '../store/oidc-adapter-clients.ts';
import { createPostgresStateStore } from '../store/oidc-adapter-postgres.ts';
import { createRedisStateStore } from '../store/oidc-adapter-redis.ts';
import { createInitialAccessTokenAdapter, hashedIdAdapter } from '../store/oidc-adapter-registration.ts';
import { sealedAdapter, type OidcStateKeys } from '../store/oidc-adapter-sealed.ts';
import { timedAdapter, type AdapterTimings } from '../store/oidc-adapter-timed.ts';
import type { Redis } from '../store/redis.ts';
import { withAccountIndex } from './account-index.ts';
import { withAtomicReplayDetection } from './atomic-replay.ts';
import { withRegistrationProvenance } from './client-governance.ts';
import { withExpiredDeviceCodesKept } from './device-code-expiry.ts';
import { withDevicePollPacing } from './device-polling.ts';
import { withReuseDetection } from './refresh-reuse.ts';
import { withRegistrationTokenClaim } from './registration-token-claim.ts';
import { IAT_GRANTABLE_SCOPES } from '../shared/scopes.ts';
import { storageFailsClosed } from './storage-unavailable.ts';

/**
 * Where the models are kept.
 * - `redis|postgres`: Redis when REDIS_URL is set, else the Postgres table oidc_payloads (swept of
 *   expired rows). consume() there is the reuse rule (withReuseDetection, src/auth/refresh-reuse.ts)
 *   over the backend's atomic mark.
 * - `postgres`: oidc_payloads whatever REDIS_URL says, with the same rule: registration
 *   credentials are configuration and outlive a Redis flush.
 * - `oauth_clients`, `initial_access_tokens`: our own tables (src/store/clients.ts, initial-access-tokens.ts).
 */
type Storage = 'redis|postgres' | 'postgres' | 'oauth_clients' | 'initial_access_tokens';

/** Wrappers of the serving provider only: they act on its requests (see providerWrapper). */
type ProviderWrapper =
  | 'failsClosed'
  | 'indexedByAccount'
  | 'atomicReplayCheck'
  | 'devicePollPacing'
  | 'expiredKept'
  | 'registrationTokenClaim'
  | 'registrationProvenance';

/** Wrappers of every reader: the provider, services (sign out everywhere, GDPR), the CLI, tests (see stateWrapper). */
type StateWrapper = 'timed' | 'sealed' | 'hashedId';

type ModelStorage = Readonly<{ storage: Storage; provider: readonly ProviderWrapper[]; state: readonly StateWrapper[] }>;

/**
 * Every model oidc-provider stores (its Adapter contract: one adapter per model name, with
 * upsert, find, findByUid, findByUserCode, consume, destroy and revokeByGrantId), where it is
 * kept and the wrappers a call goes through on the way there, outermost first: `provider`, then
 * `state`, then the storage. A model missing here is refused, never stored somewhere by default
 * (test/unit/oidc-storage.test.ts compares this table with the provider's models).
 */
export const OIDC_STORAGE = {
  // Sign-in state.
  Session: { storage: 'redis|postgres', provider: ['failsClosed', 'indexedByAccount'], state: ['timed', 'sealed'] },
  Interaction: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  Grant: { storage: 'redis|postgres', provider: ['failsClosed', 'indexedByAccount'], state: ['timed', 'sealed'] },
  // Codes and requests, redeemed once.
  AuthorizationCode: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  DeviceCode: { storage: 'redis|postgres', provider: ['failsClosed', 'devicePollPacing', 'expiredKept'], state: ['timed', 'sealed'] },
  BackchannelAuthenticationRequest: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  PreAuthorizedCode: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  PushedAuthorizationRequest: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  // Tokens.
  AccessToken: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  RefreshToken: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  ClientCredentials: { storage: 'redis|postgres', provider: ['failsClosed'], state: ['timed', 'sealed'] },
  // Client assertion and DPoP proof ids seen (kept through a restore: src/store/oidc-adapter.ts).
  ReplayDetection: { storage: 'redis|postgres', provider: ['failsClosed', 'atomicReplayCheck'], state: ['timed', 'sealed'] },
  // Clients and their registration credentials: configuration, durable in Postgres.
  Client: { storage: 'oauth_clients', provider: ['failsClosed', 'registrationProvenance'], state: ['timed'] },
  InitialAccessToken: { storage: 'initial_access_tokens', provider: ['failsClosed'], state: ['timed'] },
  RegistrationAccessToken: { storage: 'postgres', provider: ['failsClosed', 'registrationTokenClaim'], state: ['timed', 'hashedId'] },
} as const satisfies Record<string, ModelStorage>;

const ROUTES: ReadonlyMap<string, ModelStorage> = new Map(Object.entries(OIDC_STORAGE));

type Wrap = (inner: Adapter, model: string, route: ModelStorage) => Adapter;

export type OidcStorageDeps = {
  config: Pick<Config, 'refreshReuseGrace' | 'clients'>;
  knex: Knex;
  redis: Redis | undefined;
  keys: OidcStateKeys;
  clients: ClientStore;
  initialAccessTokens: InitialAccessTokenStore;
  audit: AuditService;
  accountIndex: AccountIndexStore;
  /** Atomic "first use" claims (Redis SET NX, or Postgres) for the wrappers that need one. */
  once: ReplayStore;
  logger: Logger;
};

export type OidcStorage = {
  /** oidc-provider's `adapter` factory: every wrapper of the table. One per Provider (it caches one adapter per model). */
  forProvider: () => (model: string) => Adapter;
  /** A model through its storage and `state` wrappers, addressed as the provider addresses it (by token, session id …). */
  state: (model: string) => Adapter;
  /** The `redis|postgres` storage itself, addressed by storage keys (the account index names sessions by them, S10). */
  stored: (model: string) => Adapter;
  /** Metrics on: adapters made from now on are timed. Called before the provider is built. */
  timeWith: (timings: AdapterTimings) => void;
};

export function createOidcStorage(deps: OidcStorageDeps): OidcStorage {
  const { config, knex, redis, keys, accountIndex, once } = deps;
  let timings: AdapterTimings | undefined;

  const backend = (model: string): OidcStateStore => (redis ? createRedisStateStore(redis, model) : createPostgresStateStore(knex, model));
  const stored = withReuseDetection(backend, config.refreshReuseGrace);
  const durable = withReuseDetection((model) => createPostgresStateStore(knex, model));

  function storageOf(model: string, route: ModelStorage): Adapter {
    switch (route.storage) {
      case 'redis|postgres':
        return stored(model);
      case 'postgres':
        return durable(model);
      case 'oauth_clients': {
        const idleDisableDays = config.clients.idleDisableDays;
        return createClientAdapter(deps.clients, {
          idleDisableDays,
          onIdleDisabled: (clientId) =>
            deps.audit.record({ type: 'client.disabled', clientId, data: { reason: 'idle', idle_days: idleDisableDays } }),
        });
      }
      case 'initial_access_tokens':
        return createInitialAccessTokenAdapter(deps.initialAccessTokens, { grantableScopes: IAT_GRANTABLE_SCOPES });
    }
  }

  /** What each `state` wrapper adds. */
  const stateWrapper = (name: StateWrapper): Wrap => {
    switch (name) {
      // Metrics (portcullis_adapter_operation_duration_seconds), when they are on.
      case 'timed':
        return (inner, model, route) => {
          if (!timings) return inner;
          return timedAdapter(inner, model, route.storage === 'redis|postgres' && redis ? 'redis' : 'postgres', timings);
        };
      // Stored under keyed hashes with the payload sealed: a copy of the store holds nothing usable (S10).
      case 'sealed':
        return (inner, model) => sealedAdapter(inner, model, keys);
      // Stored under the SHA-256 of the token, without the token: a database dump yields no usable one.
      case 'hashedId':
        return (inner) => hashedIdAdapter(inner);
    }
  };

  /** What each `provider` wrapper adds; `failsClosed` has one log limit per provider. */
  const providerWrapper = (name: ProviderWrapper, failsClosed: Wrap): Wrap => {
    switch (name) {
      // A store failure answers 503 temporarily_unavailable, never 500 or a token (T45).
      case 'failsClosed':
        return failsClosed;
      // Sessions and grants indexed by account inside their save, for "sign out everywhere" and erasure (R8).
      case 'indexedByAccount':
        return (inner, model) => {
          if (model !== 'Grant' && model !== 'Session')
            throw new TypeError(`only grants and sessions are indexed by account, not ${model}`);
          return withAccountIndex(inner, model, accountIndex);
        };
      // A client assertion or DPoP proof id is claimed atomically when it is looked up (T24).
      case 'atomicReplayCheck':
        return (inner) => withAtomicReplayDetection(inner, once);
      // Device-code polls faster than the interval are answered slow_down (RFC 8628 §3.5).
      case 'devicePollPacing':
        return (inner) => withDevicePollPacing(inner, once);
      // Kept past expiry, so a late poll is answered expired_token, not invalid_grant (RFC 8628 §3.5).
      case 'expiredKept':
        return (inner) => withExpiredDeviceCodesKept(inner);
      // One RFC 7592 update or delete per registration access token at a time (R10).
      case 'registrationTokenClaim':
        return (inner) => withRegistrationTokenClaim(inner, once);
      // A registered client records the initial access token that made it (oauth_clients.created_by).
      case 'registrationProvenance':
        return (inner) => withRegistrationProvenance(inner, deps.clients);
    }
  };

  function routeOf(model: string): ModelStorage {
    const route = ROUTES.get(model);
    if (!route) throw new Error(`oidc-provider model ${model} has no storage: add it to OIDC_STORAGE (src/auth/oidc-storage.ts)`);
    return route;
  }

  /** The wrappers named, outermost first, around `inner`. */
  const wrap = (wrappers: readonly Wrap[], inner: Adapter, model: string, route: ModelStorage): Adapter =>
    wrappers.reduceRight((adapter, wrapper) => wrapper(adapter, model, route), inner);

  function state(model: string): Adapter {
    const route = routeOf(model);
    return wrap(route.state.map(stateWrapper), storageOf(model, route), model, route);
  }

  return {
    forProvider: () => {
      const failsClosed = storageFailsClosed(deps.logger);
      return (model) => {
        const route = routeOf(model);
        return wrap(
          route.provider.map((name) => providerWrapper(name, failsClosed)),
          state(model),
          model,
          route,
        );
      };
    },
    state,
    stored,
    timeWith: (value) => {
      timings = value;
    },
  };
}
