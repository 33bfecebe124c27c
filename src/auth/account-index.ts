import type Provider from 'oidc-provider';
import type { Logger } from '../shared/logger.ts';
import { summariseGrant, type AccountIndexStore } from '../store/account-index.ts';
import type { Adapter } from '../store/oidc-adapter.ts';

/**
 * Sessions and grants are indexed inside their save, before the provider answers: "sign out
 * everywhere" and a password change end the sessions and revoke the grants they find in the
 * index, so neither may exist unindexed, not even for the moment an event listener would take
 * (under load a session or an app connected just before "sign out everywhere" survived it, R8).
 * The row is written after the provider's own write, so a failed index write fails the save
 * (fail closed) and a concurrent "sign out everywhere" that missed the row still leaves the
 * model findable by the next one. Destroying a session or grant removes its row the same way.
 */
export function withAccountIndex(inner: Adapter, kind: 'Grant' | 'Session', index: AccountIndexStore): Adapter {
  return {
    ...inner,
    async upsert(id, payload, expiresIn) {
      await inner.upsert(id, payload, expiresIn);
      const { accountId, clientId } = payload as { accountId?: unknown; clientId?: unknown };
      // A session before its login has no account yet: nothing to index.
      if (typeof accountId !== 'string') return;
      await index.put({
        kind,
        id,
        accountId,
        clientId: kind === 'Grant' && typeof clientId === 'string' ? clientId : undefined,
        expiresAt: expiresIn !== undefined && expiresIn > 0 ? new Date(Date.now() + expiresIn * 1000) : undefined,
        // What the GDPR export shows of a grant, readable without unsealing it (S3).
        grant: kind === 'Grant' ? summariseGrant(payload) : undefined,
      });
    },
    async destroy(id) {
      await inner.destroy(id);
      await index.remove(kind, id);
    },
  };
}

type Model = { jti: string; accountId?: string; clientId?: string; grantId?: string; exp?: number };

/**
 * The last use of grants, from the provider's access-token events ("last used" on the account
 * page): best effort, failures are logged, never thrown at the provider. Sessions and grants
 * themselves are indexed by withAccountIndex.
 */
export function attachAccountIndex(provider: Provider, index: AccountIndexStore, logger: Logger): void {
  // The typed overloads list only some events; model events are plain EventEmitter events.
  const on = (event: string, listener: (model: Model) => void) =>
    (provider as unknown as { on(e: string, l: (m: Model) => void): void }).on(event, listener);
  const touch = (t: Model) => {
    if (!t.grantId) return;
    index.touch('Grant', t.grantId).catch((error: unknown) => {
      logger.warn({ err: error }, 'grant last-use update failed');
    });
  };
  on('access_token.saved', touch);
  on('access_token.issued', touch);
}
