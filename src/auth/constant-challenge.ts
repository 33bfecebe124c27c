import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { AuditService } from '../services/audit.ts';
import type { Logger } from '../shared/logger.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';

/** Audit type of a client sending one code_challenge for different transactions (RFC 9700 §2.1.1, B7). */
export const CONSTANT_CHALLENGE_EVENT = 'client.pkce_challenge_reused';

/** How long a client's challenges are remembered, and how often one client is reported at most, seconds. */
const REMEMBER_SECONDS = 86_400;
const REPORT_EVERY_SECONDS = 3600;

/**
 * A code_challenge must be specific to one transaction; a client that sends the same one again
 * has a constant code_verifier, and PKCE then protects nothing. After each successful
 * authorization this remembers the client's challenge, and the challenge with the transaction's
 * state and nonce: a known challenge with a new state/nonce is a constant challenge, audited and
 * logged (at most hourly per client). The same request repeated (a reload: same state) is not.
 * Detection only: the request has already succeeded, and refusing would punish the user for the
 * client's bug. Without state and nonce, a new transaction cannot be told from a reload.
 */
export function detectConstantChallenges(provider: Provider, deps: { audit: AuditService; once: ReplayStore; logger: Logger }): void {
  provider.on('authorization.success', (ctx: KoaContextWithOIDC) => {
    const params = ctx.oidc.params ?? {};
    const challenge = params.code_challenge;
    const clientId = ctx.oidc.client?.clientId;
    if (typeof challenge !== 'string' || !clientId) return;
    const transaction = `${typeof params.state === 'string' ? params.state : ''}\u0000${typeof params.nonce === 'string' ? params.nonce : ''}`;
    const check = async () => {
      // Both claims are made every time, so the first transaction's pair is known when a second arrives.
      const [newChallenge, newTransaction] = await Promise.all([
        deps.once.firstUse(`pkce-challenge:${clientId}:${challenge}`, REMEMBER_SECONDS),
        deps.once.firstUse(`pkce-transaction:${clientId}:${challenge}:${transaction}`, REMEMBER_SECONDS),
      ]);
      if (newChallenge || !newTransaction) return;
      if (!(await deps.once.firstUse(`pkce-reported:${clientId}`, REPORT_EVERY_SECONDS))) return;
      deps.logger.warn({ clientId }, 'client reuses one PKCE code_challenge across authorizations (constant code_verifier)');
      await deps.audit.record({
        type: CONSTANT_CHALLENGE_EVENT,
        outcome: 'failure',
        actorId: ctx.oidc.session?.accountId,
        clientId,
        ip: ctx.ip,
        userAgent: ctx.get('user-agent') || undefined,
        data: { client_name: ctx.oidc.client?.clientName ?? clientId },
      });
    };
    check().catch((err: unknown) => {
      deps.logger.error({ err, clientId }, 'constant PKCE challenge check failed');
    });
  });
}
