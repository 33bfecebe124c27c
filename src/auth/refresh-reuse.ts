import type Provider from 'oidc-provider';
import type { errors, KoaContextWithOIDC } from 'oidc-provider';
import type { AuditService } from '../services/audit.ts';
import type { Logger } from '../shared/logger.ts';
import type { AuditSearchStore } from '../store/audit-search.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';

/** Audit type of a rotated refresh token presented again (RFC 9700 §4.14.2): the grant is revoked. */
export const REFRESH_REUSE_EVENT = 'token.refresh_reuse';

/** How long the account page keeps telling the user about a reuse, days. */
const NOTICE_DAYS = 30;

/**
 * The error both reuse paths end in: oidc-provider's own check and our adapters' atomic consume()
 * (alreadyConsumed). The reason is in error_detail; the description is a generic sentence.
 */
const isReuse = (error: errors.OIDCProviderError): boolean =>
  error.error === 'invalid_grant' && error.error_detail === 'refresh token already used';

/**
 * Records refresh token reuse as a security event. The revocation itself happens before the
 * answer (oidc-provider's replay path, or the adapters' consume() when requests race); this
 * only observes it. Concurrent losers report the same grant several times: one event per grant.
 * The token itself is never recorded, only who, which app, from where.
 */
export function auditRefreshReuse(provider: Provider, deps: { audit: AuditService; once: ReplayStore; logger: Logger; ttlSeconds: number }): void {
  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: errors.OIDCProviderError) => {
    if (!isReuse(error)) return;
    const token = ctx.oidc.entities.RefreshToken;
    if (!token?.grantId) return;
    const { grantId, accountId, clientId } = token;
    const record = async () => {
      if (!(await deps.once.firstUse(`refresh-reuse:${grantId}`, deps.ttlSeconds))) return;
      await deps.audit.record({
        type: REFRESH_REUSE_EVENT,
        outcome: 'failure',
        actorId: accountId,
        clientId,
        ip: ctx.ip,
        userAgent: ctx.get('user-agent') || undefined,
        data: { grant_id: grantId, client_name: ctx.oidc.client?.clientName ?? clientId, rotations: token.rotations ?? 0, action: 'grant_revoked' },
      });
    };
    record().catch((err: unknown) => {
      deps.logger.error({ err, grantId }, 'refresh token reuse could not be audited');
    });
  });
}

export type ReuseNotice = { clientName: string; at: Date };

/** The audit event that records "I have seen it" on the account page's reuse notice. */
export const REUSE_NOTICE_DISMISSED_EVENT = 'account.reuse_notice_dismissed';

/**
 * Recent reuse events of one user, newest first, for the account page: those of the last
 * NOTICE_DAYS days that came after the user last dismissed the notice (the audit log is the
 * record of both, so nothing else has to be stored).
 */
export async function recentRefreshReuse(search: AuditSearchStore, userId: string): Promise<ReuseNotice[]> {
  const [rows, dismissals] = await Promise.all([
    search.search({ actorId: userId, type: REFRESH_REUSE_EVENT, since: new Date(Date.now() - NOTICE_DAYS * 86_400_000), limit: 5 }),
    search.search({ actorId: userId, type: REUSE_NOTICE_DISMISSED_EVENT, limit: 1 }),
  ]);
  const dismissedAfter = dismissals[0]?.id ?? 0;
  return rows
    .filter((row) => row.id > dismissedAfter)
    .map((row) => ({ clientName: typeof row.data.client_name === 'string' ? row.data.client_name : (row.client_id ?? 'an app'), at: row.occurred_at }));
}
