import type { AccountIndexStore } from '../store/account-index.ts';
import type { Adapter } from '../store/oidc-adapter.ts';
import type { UserStore } from '../store/users.ts';

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
}: {
  index: AccountIndexStore;
  oidcAdapter: (model: string) => Adapter;
  storedOidcAdapter: (model: string) => Adapter;
  users: Pick<UserStore, 'endSessionsBefore'>;
}) {
  async function revokeGrant(grantId: string): Promise<void> {
    for (const model of GRANT_MODELS) await oidcAdapter(model).revokeByGrantId(grantId);
    await oidcAdapter('Grant').destroy(grantId);
    await index.remove('Grant', grantId);
  }

  return {
    revokeGrant,

    /**
     * Ends every session of the account but `keep` (its id and uid), and revokes all its grants
     * and tokens. First the account's "sessions not valid before" time moves to now: a request
     * still running with one of these sessions saves it again as it ends (oidc-provider does),
     * and that copy is then worth nothing (R8, R13). The deletions below only tidy up.
     */
    async signOutEverywhere(accountId: string, keep?: { id: string; uid: string }): Promise<{ sessions: number; grants: number }> {
      await users.endSessionsBefore(accountId, new Date(), keep?.uid ?? null);
      const grants = await index.list(accountId, 'Grant');
      for (const row of grants) await revokeGrant(row.id);
      const kept = keep === undefined ? undefined : index.keyOf('Session', keep.id);
      const sessions = (await index.list(accountId, 'Session')).filter((row) => row.id !== kept);
      for (const row of sessions) {
        await storedOidcAdapter('Session').destroy(row.id);
        await index.removeRow('Session', row.id);
      }
      return { sessions: sessions.length, grants: grants.length };
    },
  };
}

export type AccountSessions = ReturnType<typeof createAccountSessions>;
