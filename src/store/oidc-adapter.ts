import type { Adapter, AdapterPayload } from 'oidc-provider';

export type { Adapter, AdapterPayload };

/** Models whose tokens belong to a grant and die with it (revokeByGrantId). */
export const grantableModels = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * Models a restore leaves alone when it ends every flow (oidc-adapter-redis endOidcState, and
 * oidc_payloads in store/backup.ts): the replay cache of client assertion jtis holds no grant,
 * and emptying it would let a captured assertion be replayed.
 */
export const modelsKeptByRestore: ReadonlySet<string> = new Set(['ReplayDetection']);

/** How long, and how often, a consumed value may pass again (the reuse rule: src/auth/refresh-reuse.ts). */
export type RefreshGrace = Readonly<{ seconds: number; count: number }>;

export const NO_GRACE: RefreshGrace = { seconds: 0, count: 0 };

/** What an atomic consumption mark found: consumed now, passed again within the grace, or refused. */
export type ConsumeMark = 'first' | 'grace' | 'refused';

/**
 * What a storage backend (Redis, or Postgres oidc_payloads) keeps for one model: oidc-provider's
 * Adapter contract, with consume() left to the reuse rule (src/auth/refresh-reuse.ts), which
 * decides on the atomic primitive below. find() shows a consumed value's `consumed` mark (epoch
 * seconds); nothing here revokes or refuses anything by itself.
 */
export type OidcStateStore = Omit<Adapter, 'consume'> & {
  /**
   * In one atomic step: marks `id` consumed unless it already is ('first'); lets an already
   * consumed one pass again ('grace') only within `grace` — `seconds` after its first consumption,
   * at most `count` times, counted in the same step; else 'refused' (also when `id` is gone).
   */
  markConsumed(id: string, grace: RefreshGrace): Promise<ConsumeMark>;
  /** When `id` was first consumed, epoch ms; undefined when it is not consumed (or gone). */
  consumedAtMs(id: string): Promise<number | undefined>;
  /** The grant `id` belongs to, as stored (expired or not), so a refused reuse can revoke it. */
  grantIdOf(id: string): Promise<string | undefined>;
};
