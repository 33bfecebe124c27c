import type Provider from 'oidc-provider';
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { AuditService } from '../services/audit.ts';
import type { Logger } from '../shared/logger.ts';
import type { AuditSearchStore } from '../store/audit-search.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';
import { NO_GRACE, type Adapter, type AdapterPayload, type OidcStateStore, type RefreshGrace } from '../store/oidc-adapter.ts';

/*
 * Reuse detection, in one place. A code or refresh token is redeemed once (RFC 6749 §4.1.2,
 * RFC 9700 §4.14.2): a second redemption revokes its whole grant and is refused (the rule,
 * withReuseDetection, over the storage backend's atomic mark), a refused refresh token is audited
 * (auditRefreshReuse), and its owner is told on the account page (recentRefreshReuse).
 */

/** Audit type of a rotated refresh token presented again (RFC 9700 §4.14.2): the grant is revoked. */
export const REFRESH_REUSE_EVENT = 'token.refresh_reuse';

/** How long the account page keeps telling the user about a reuse, days. */
const NOTICE_DAYS = 30;

/** Models that are redeemed once; a second redemption revokes their grant. */
export const grantSourceModels: ReadonlySet<string> = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** What oidc-provider's own replay path says for a refresh token (lib/actions/grants/refresh_token.js), and so do we. */
const REFRESH_REUSE_DETAIL = 'refresh token already used';

/** The refusal of a second redemption (the reason is error_detail; the description is a generic sentence). */
const alreadyConsumed = (model: string): Error =>
  new errors.InvalidGrant(model === 'RefreshToken' ? REFRESH_REUSE_DETAIL : 'grant already used');

/** The error both reuse paths end in: oidc-provider's own check and withReuseDetection's consume(). */
const isReuse = (error: errors.OIDCProviderError): boolean =>
  error.error === 'invalid_grant' && error.error_detail === REFRESH_REUSE_DETAIL;

/**
 * REFRESH_REUSE_GRACE_SECONDS / _COUNT: a rotated refresh token may be presented again `count`
 * more times within `seconds` of its first use (a client retrying after a lost response, or
 * two tabs racing), like Okta's "grace period for token rotation" and Hydra's
 * refresh_token_rotation_grace_period. Off (0) by default: then every reuse revokes the grant.
 */
const graceOf = (model: string, grace: RefreshGrace): RefreshGrace =>
  model === 'RefreshToken' && grace.seconds > 0 && grace.count > 0 ? grace : NO_GRACE;

/**
 * oidc-provider checks `consumed` and then calls consume(): two concurrent redemptions can both
 * pass the check. consume() here takes the store's atomic mark, and the loser of the race (or a
 * reuse beyond the grace) revokes the grant — its tokens and the Grant itself, as oidc-provider's
 * own replay path does: a concurrent winner may still be saving its new tokens, and without the
 * Grant they are worthless (T26) — and is answered invalid_grant.
 *
 * oidc-provider revokes the grant as soon as `find` returns a consumed refresh token, before
 * consume() can decide. Within the grace window `find` therefore hides the consumed mark, and
 * consume() alone decides atomically (window and count); outside it the provider's own path runs.
 *
 * The store is addressed by storage keys (below the sealing): grant ids are the stored ones.
 */
export function withReuseDetection(
  store: (model: string) => OidcStateStore,
  refreshGrace: RefreshGrace = NO_GRACE,
): (model: string) => Adapter {
  return (model) => {
    const inner = store(model);
    const grace = graceOf(model, refreshGrace);
    return {
      upsert: (id, payload, expiresIn) => inner.upsert(id, payload, expiresIn),
      async find(id) {
        const payload = await inner.find(id);
        if (grace === NO_GRACE || !payload?.consumed) return payload;
        return hideConsumedWithinGrace(payload, await inner.consumedAtMs(id), grace);
      },
      findByUid: (uid) => inner.findByUid(uid),
      findByUserCode: (userCode) => inner.findByUserCode(userCode),
      async consume(id) {
        const mark = await inner.markConsumed(id, grace);
        if (mark !== 'refused' || !grantSourceModels.has(model)) return;
        const grantId = await inner.grantIdOf(id);
        if (grantId) {
          await inner.revokeByGrantId(grantId);
          await store('Grant').destroy(grantId);
        }
        throw alreadyConsumed(model);
      },
      destroy: (id) => inner.destroy(id),
      revokeByGrantId: (grantId) => inner.revokeByGrantId(grantId),
    };
  };
}

function hideConsumedWithinGrace(payload: AdapterPayload, consumedAtMs: number | undefined, grace: RefreshGrace): AdapterPayload {
  if (consumedAtMs === undefined || Date.now() - consumedAtMs > grace.seconds * 1000) return payload;
  const rest: AdapterPayload = { ...payload };
  delete rest.consumed;
  return rest;
}

/**
 * Records refresh token reuse as a security event. The revocation itself happens before the
 * answer (oidc-provider's replay path, or withReuseDetection's consume() when requests race); this
 * only observes it. Concurrent losers report the same grant several times: one event per grant.
 * The token itself is never recorded, only who, which app, from where.
 */
export function auditRefreshReuse(
  provider: Provider,
  deps: { audit: AuditService; once: ReplayStore; logger: Logger; ttlSeconds: number },
): void {
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
        data: {
          grant_id: grantId,
          client_name: ctx.oidc.client?.clientName ?? clientId,
          rotations: token.rotations ?? 0,
          action: 'grant_revoked',
        },
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
    .map((row) => ({
      clientName: typeof row.data.client_name === 'string' ? row.data.client_name : (row.client_id ?? 'an app'),
      at: row.occurred_at,
    }));
}
