import type { ClientStore } from './clients.ts';
import type { Adapter } from './oidc-adapter.ts';

/**
 * oidc-provider's Client model over our own table (oauth_clients, src/store/clients.ts): durable
 * whatever REDIS_URL says, secrets stored hashed, metadata cached and invalidated across
 * instances. A client idle for `idleDisableDays` is disabled when it is next looked up, and
 * `onIdleDisabled` is told (the audit). Clients have no grants, uids or user codes.
 */
export function createClientAdapter(
  clients: ClientStore,
  { idleDisableDays, onIdleDisabled }: { idleDisableDays: number; onIdleDisabled: (clientId: string) => Promise<void> },
): Adapter {
  return {
    find: (id) => clients.find(id, idleDisableDays, () => onIdleDisabled(id)),
    upsert: (id, payload) => clients.upsert({ ...(payload as Record<string, unknown>), client_id: id }),
    destroy: (id) => clients.remove(id),
    consume: () => Promise.resolve(),
    findByUid: () => Promise.resolve(undefined),
    findByUserCode: () => Promise.resolve(undefined),
    revokeByGrantId: () => Promise.resolve(),
  };
}
