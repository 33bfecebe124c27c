import type { AccountIndexStore, IndexRow } from '../store/account-index.ts';
import type { Adapter } from '../store/oidc-adapter.ts';
import type { OidcRevocations } from '../store/oidc-revocations.ts';
import type { UserStore } from '../store/users.ts';
import type { Logger } from '../shared/logger.ts';

/** Token models that hang off a grant (oidc-provider's revokeByGrantId contract). */
const GRANT_MODELS = ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest'];

/**
 * Ending an account's provider sessions and grants — the "sign out everywhere" oidc-provider
 * leaves to the host — through the provider's own adapters and our account index. The index
 * names sessions by storage key (S10), so they are ended through `storedOidcAdapter`, the storage
 * adapter addressed by storage keys.
 */
export function createAccountSessions({
  index,
  oidcAdapter,
  storedOidcAdapter,
  users,
  revocations,
}: {
  index: AccountIndexStore;
  oidcAdapter: (model: string) => Adapter;
  storedOidcAdapter: (model: string) => Adapter;
  users: Pick<UserStore, 'endSessionsBefore' | 'sessionsToRevoke' | 'sessionsRevoked'>;
  revocations: OidcRevocations;
}) {
  async function revokeGrant(grantId: string): Promise<void> {
    for (const model of GRANT_MODELS) await oidcAdapter(model).revokeByGrantId(grantId);
    await oidcAdapter('Grant').destroy(grantId);
    await index.remove('Grant', grantId);
  }

  /** Revokes every grant of the account with its tokens, and ends every session but the one stored under `keptRow`. */
  async function endAll(accountId: string, keptRow?: string): Promise<{ sessions: number; grants: number }> {
    const grants = await index.list(accountId, 'Grant');
    for (const row of grants) await revokeGrant(row.id);
    const sessions = (await index.list(accountId, 'Session')).filter((row) => row.id !== keptRow);
    for (const row of sessions) {
      await storedOidcAdapter('Session').destroy(row.id);
      await index.removeRow('Session', row.id);
    }
    return { sessions: sessions.length, grants: grants.length };
  }

  return {
    revokeGrant,

    /** The account's grants as indexed (the account page's connected apps, with when each was last used). */
    grants: (accountId: string): Promise<IndexRow[]> => index.list(accountId, 'Grant'),

    /** Ends one session by its id (the session cookie's value). */
    async endSession(sessionId: string): Promise<void> {
      await oidcAdapter('Session').destroy(sessionId);
    },

    /**
     * Ends the sessions and grants of accounts whose sessions-not-before moved without that
     * (disabling an account in the admin API, which may not hold the oidc state's keys: issue 20,
     * S3), and records each as done, so enabling the account again brings nothing back (R13).
     * The cutoff alone already makes those sessions and tokens worthless wherever they are read;
     * this removes them. Safe on every auth instance at once (ending twice ends nothing more); a
     * failure leaves the account to the next run. Returns how many accounts were done.
     */
    async revokePending(limit = 100): Promise<number> {
      const pending = await users.sessionsToRevoke(limit);
      for (const { id, cutoff } of pending) {
        await endAll(id);
        await users.sessionsRevoked(id, cutoff);
      }
      return pending.length;
    },

    /**
     * Ends what erasures in the API queued (S3: the API holds no key to the oidc state): each
     * session by its storage key, each grant with its tokens, and in Postgres whatever else of the
     * account's oidc state is left. Safe on every auth instance at once; a failure leaves the row
     * to the next run. Returns how many rows were done.
     */
    async endQueued(limit = 100): Promise<number> {
      const rows = await revocations.pending(limit);
      for (const row of rows) {
        if (row.kind === 'Session') await storedOidcAdapter('Session').destroy(row.id);
        else if (row.kind === 'Grant') await revokeGrant(row.id);
        else await revocations.removeOidcPayloadsOf(row.account_id);
        await revocations.done(row);
      }
      return rows.length;
    },

    /**
     * Ends every session of the account but `keep` (its id and uid), and revokes all its grants
     * and tokens. First the account's "sessions not valid before" time moves to now: a request
     * still running with one of these sessions saves it again as it ends (oidc-provider does),
     * and that copy is then worth nothing (R8, R13). The deletions below only tidy up.
     */
    async signOutEverywhere(accountId: string, keep?: { id: string; uid: string }): Promise<{ sessions: number; grants: number }> {
      await users.endSessionsBefore(accountId, new Date(), keep?.uid ?? null);
      return endAll(accountId, keep === undefined ? undefined : index.keyOf('Session', keep.id));
    },
  };
}

export type AccountSessions = ReturnType<typeof createAccountSessions>;

/** How often each auth instance looks for accounts whose sessions are still to be ended (two indexed queries). */
export const REVOCATION_SWEEP_MS = 2_000;

/**
 * Runs revokePending and endQueued every `intervalMs` on this instance until stopped. Failures are logged and
 * retried on the next run; a run never overlaps the previous one.
 */
export function startRevocationSweep({
  sessions,
  logger,
  intervalMs = REVOCATION_SWEEP_MS,
}: {
  sessions: AccountSessions;
  logger: Logger;
  intervalMs?: number;
}): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    running ??= sessions
      .revokePending()
      .then(async (done) => {
        if (done > 0) logger.info({ accounts: done }, 'ended the sessions and grants of accounts disabled elsewhere');
        const erased = await sessions.endQueued();
        if (erased > 0) logger.info({ revocations: erased }, 'ended the sessions and grants of erased accounts');
      })
      .catch((error: unknown) => {
        logger.warn({ err: error }, 'ending the sessions of disabled accounts failed; retrying on the next run');
      })
      .finally(() => {
        running = undefined;
      });
  }, intervalMs).unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
