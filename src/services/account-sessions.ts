import type { AccountIndexStore } from '../store/account-index.ts';
import type { Adapter } from '../store/oidc-adapter.ts';

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
}: {
  index: AccountIndexStore;
  oidcAdapter: (model: string) => Adapter;
  storedOidcAdapter: (model: string) => Adapter;
}) {
  async function revokeGrant(grantId: string): Promise<void> {
    for (const model of GRANT_MODELS) await oidcAdapter(model).revokeByGrantId(grantId);
    await oidcAdapter('Grant').destroy(grantId);
    await index.remove('Grant', grantId);
  }

  return {
    revokeGrant,

    /** Ends every session of the account but `keep`, and revokes all its grants and tokens. */
    async signOutEverywhere(accountId: string, keep?: string): Promise<{ sessions: number; grants: number }> {
      const grants = await index.list(accountId, 'Grant');
      for (const row of grants) await revokeGrant(row.id);
      const kept = keep === undefined ? undefined : index.keyOf('Session', keep);
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
