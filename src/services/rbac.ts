import { LRUCache } from 'lru-cache';
import type { RoleStore } from '../store/roles.ts';
import type { UserStore } from '../store/users.ts';
import { ACR } from './mfa-policy.ts';
import { tokenCounts, type SessionCutoff } from './session-validity.ts';

/**
 * What the API knows about a token's user: whether the account is usable, its roles and
 * permissions, whether a token issued at a given time still counts (`tokenCounts`: none
 * issued before the account's sessions-not-before, R13), and how strong its sign-in must have
 * been (`requiredAcr`, R15).
 */
export type Subject = {
  id: string;
  active: boolean;
  roles: readonly string[];
  permissions: ReadonlySet<string>;
  tokenCounts: (iat: number | undefined) => boolean;
  /**
   * The least acr a token must carry to use these permissions: loa:2 when any role requires a
   * second factor (the sign-in policy's rule, src/services/mfa-policy.ts), else none (R15).
   */
  requiredAcr: string | undefined;
};

/**
 * Role-based access control over Postgres (roles → permissions). Lookups are cached in-process
 * for a few seconds so a burst of API calls costs one query; role changes made through the
 * admin API invalidate the entry at once (other instances converge within the TTL).
 */
export function createRbacService({
  roles,
  users,
  ttlMs = 5_000,
}: {
  roles: RoleStore;
  users: Pick<UserStore, 'standingOf'>;
  ttlMs?: number;
}) {
  // Bounded and expiring: a flood of distinct subjects evicts the least recently used, never grows memory.
  const cache = new LRUCache<string, Promise<Subject>>({ max: 10_000, ttl: ttlMs });

  async function load(userId: string): Promise<Subject> {
    const user = await users.standingOf(userId);
    if (!user) return { id: userId, active: false, roles: [], permissions: new Set(), tokenCounts: () => false, requiredAcr: undefined };
    const [roleNames, permissionNames, requiresMfa] = await Promise.all([
      roles.rolesOf(userId),
      roles.permissionsOf(userId),
      roles.requiresMfa(userId),
    ]);
    const cutoff: SessionCutoff = {
      sessions_not_before: user.sessions_not_before,
      sessions_not_before_keep: user.sessions_not_before_keep,
    };
    return {
      id: userId,
      active: !user.disabled,
      roles: roleNames,
      permissions: new Set(permissionNames),
      tokenCounts: (iat) => tokenCounts(cutoff, iat),
      requiredAcr: requiresMfa ? ACR.mfa : undefined,
    };
  }

  return {
    subject(userId: string): Promise<Subject> {
      const hit = cache.get(userId);
      if (hit) return hit;
      const subject = load(userId);
      cache.set(userId, subject);
      // A failed lookup must not be cached.
      subject.catch(() => cache.delete(userId));
      return subject;
    },

    invalidate(userId: string): void {
      cache.delete(userId);
    },
  };
}

export type RbacService = ReturnType<typeof createRbacService>;
