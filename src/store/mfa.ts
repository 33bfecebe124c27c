import type { Knex } from 'knex';

export type TotpRow = {
  user_id: string;
  secret_sealed: string;
  last_step: string | number;
  confirmed_at: Date | null;
  last_used_at: Date | null;
  /**
   * The flow an unconfirmed secret belongs to, as its keyed digest (`bindingKey`); null once
   * confirmed. Compare with isPendingFor(), never with a binding itself.
   */
  pending_binding: string | null;
  created_at: Date;
};

/** hash_version 1: unkeyed SHA-256 (earlier releases); 2: HMAC under the server's pepper (src/services/recovery-codes.ts). */
export type RecoveryCodeRow = { id: string; code_hash: Buffer; hash_version: number };

/**
 * TOTP secrets, recovery code hashes, WebAuthn ceremony challenges and MFA-requiring roles.
 *
 * A ceremony's binding names the flow it belongs to: an interaction uid (the interaction cookie)
 * or `account:<session id>` (the session cookie). Both are bearer values, and mfa_totp is in
 * every backup, so only `bindingKey(binding)` is stored and looked up (S12): a keyed digest
 * (src/shared/derive-key.ts keyedDigest), never the id itself.
 */
export function createMfaStore(knex: Knex, { bindingKey }: { bindingKey: (binding: string) => string }) {
  return {
    async findTotp(userId: string): Promise<TotpRow | undefined> {
      return knex<TotpRow>('mfa_totp').where({ user_id: userId }).first();
    },

    /**
     * A new, unconfirmed secret for the flow `binding` replaces any unconfirmed one (of any flow,
     * which can then no longer confirm it); a confirmed one is kept.
     */
    async putPendingTotp(userId: string, secretSealed: string, binding: string): Promise<boolean> {
      const rows = await knex('mfa_totp')
        .insert({ user_id: userId, secret_sealed: secretSealed, last_step: 0, confirmed_at: null, pending_binding: bindingKey(binding) })
        .onConflict('user_id')
        .merge()
        .where('mfa_totp.confirmed_at', null)
        .returning('user_id');
      return rows.length > 0;
    },

    /**
     * Records an accepted code atomically: only one request can move last_step past a given
     * step, so the same code cannot be used twice (RFC 6238 §5.2), even concurrently.
     * Enrolment (`pending`) confirms exactly the secret the code was checked against, and only
     * for the flow it was begun in: a secret replaced meanwhile (by this flow or another) is not
     * confirmed.
     */
    async acceptTotpStep(userId: string, step: number, pending?: { binding: string; secretSealed: string }): Promise<boolean> {
      const query = knex('mfa_totp').where({ user_id: userId }).andWhere('last_step', '<', step);
      if (pending) {
        void query
          .whereNull('confirmed_at')
          .andWhere({ pending_binding: bindingKey(pending.binding), secret_sealed: pending.secretSealed });
        return (
          (await query.update({ last_step: step, last_used_at: knex.fn.now(), confirmed_at: knex.fn.now(), pending_binding: null })) === 1
        );
      }
      // Sign-in codes count only for a confirmed secret.
      void query.whereNotNull('confirmed_at');
      return (await query.update({ last_step: step, last_used_at: knex.fn.now() })) === 1;
    },

    /** Whether the row's unconfirmed secret was begun in the flow `binding`. */
    isPendingFor(row: TotpRow, binding: string): boolean {
      return row.confirmed_at === null && row.pending_binding !== null && row.pending_binding === bindingKey(binding);
    },

    async removeTotp(userId: string): Promise<boolean> {
      return (await knex('mfa_totp').where({ user_id: userId }).delete()) > 0;
    },

    async unusedRecoveryCodes(userId: string): Promise<RecoveryCodeRow[]> {
      return knex('mfa_recovery_codes')
        .where({ user_id: userId, used_at: null })
        .select<RecoveryCodeRow[]>('id', 'code_hash', 'hash_version');
    },

    /** Up to `limit` rows (used or not) still hashed the way `version` says, after `afterId`. */
    async recoveryCodesOfVersion(version: number, limit: number, afterId = '0'): Promise<RecoveryCodeRow[]> {
      return knex('mfa_recovery_codes')
        .where({ hash_version: version })
        .andWhere('id', '>', afterId)
        .orderBy('id')
        .limit(limit)
        .select<RecoveryCodeRow[]>('id', 'code_hash', 'hash_version');
    },

    /** Rewrites one hash where the row still holds the one that was read (compare and set). */
    async rehashRecoveryCode(row: RecoveryCodeRow, hash: Buffer, version: number): Promise<boolean> {
      const updated = await knex('mfa_recovery_codes')
        .where({ id: row.id, hash_version: row.hash_version, code_hash: row.code_hash })
        .update({ code_hash: hash, hash_version: version });
      return updated === 1;
    },

    /** Unused and used codes by hash version, for `keys status`. */
    async recoveryCodeVersions(): Promise<Record<string, number>> {
      const rows = await knex('mfa_recovery_codes')
        .groupBy('hash_version')
        .select<{ hash_version: number; count: string | number }[]>('hash_version', knex.raw('count(*) AS count'));
      return Object.fromEntries(rows.map((row) => [String(row.hash_version), Number(row.count)]));
    },

    /** Single use, atomically: only the first concurrent request marks the code used. */
    async useRecoveryCode(id: string): Promise<boolean> {
      return (await knex('mfa_recovery_codes').where({ id, used_at: null }).update({ used_at: knex.fn.now() })) === 1;
    },

    /** The new set replaces the old one in one transaction. */
    async replaceRecoveryCodes(userId: string, hashes: readonly Buffer[], hashVersion: number): Promise<void> {
      await knex.transaction(async (trx) => {
        await trx('mfa_recovery_codes').where({ user_id: userId }).delete();
        if (hashes.length > 0)
          await trx('mfa_recovery_codes').insert(hashes.map((code_hash) => ({ user_id: userId, code_hash, hash_version: hashVersion })));
      });
    },

    async removeRecoveryCodes(userId: string): Promise<void> {
      await knex('mfa_recovery_codes').where({ user_id: userId }).delete();
    },

    async putChallenge(input: {
      binding: string;
      purpose: string;
      challenge: string;
      userId?: string | undefined;
      ttlSeconds: number;
    }): Promise<void> {
      await knex('webauthn_challenges')
        .insert({
          binding: bindingKey(input.binding),
          purpose: input.purpose,
          challenge: input.challenge,
          user_id: input.userId ?? null,
          expires_at: new Date(Date.now() + input.ttlSeconds * 1000),
        })
        .onConflict(['binding', 'purpose'])
        .merge();
      // Expired challenges of everyone are swept as new ones are written (takeChallenge refuses them anyway).
      await knex('webauthn_challenges').where('expires_at', '<', new Date()).delete();
    },

    /** Takes the challenge out (single use); expired or unknown ones yield nothing. */
    async takeChallenge(binding: string, purpose: string): Promise<{ challenge: string; userId: string | null } | undefined> {
      const rows = await knex('webauthn_challenges')
        .where({ binding: bindingKey(binding), purpose })
        .delete()
        .returning<{ challenge: string; user_id: string | null; expires_at: Date }[]>(['challenge', 'user_id', 'expires_at']);
      const row = rows[0];
      if (!row || row.expires_at.getTime() < Date.now()) return undefined;
      return { challenge: row.challenge, userId: row.user_id };
    },

    /** Turns the MFA requirement of a role on or off; false when the role does not exist. */
    async setRoleRequiresMfa(role: string, required: boolean): Promise<boolean> {
      return (await knex('roles').where({ name: role }).update({ requires_mfa: required, updated_at: knex.fn.now() })) === 1;
    },

    /** Whether any of the user's roles requires a second factor. */
    async roleRequiresMfa(userId: string): Promise<boolean> {
      const row = await knex('user_roles as ur')
        .join('roles as r', 'r.name', 'ur.role')
        .where({ 'ur.user_id': userId, 'r.requires_mfa': true })
        .first<{ role: string } | undefined>('ur.role');
      return row !== undefined;
    },

    /**
     * Everything the second-factor policy needs, in one round trip (asked on every sign-in):
     * a confirmed TOTP, any passkey, a role requiring MFA, and the unused recovery codes.
     */
    async policyInputs(userId: string): Promise<{ totp: boolean; webauthn: boolean; roleRequiresMfa: boolean; recoveryCodesLeft: number }> {
      const result = await knex.raw<{ rows: { totp: boolean; webauthn: boolean; role: boolean; recovery: number }[] }>(
        `SELECT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = :id AND confirmed_at IS NOT NULL) AS totp,
                EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = :id) AS webauthn,
                EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.name = ur.role WHERE ur.user_id = :id AND r.requires_mfa) AS role,
                (SELECT count(*) FROM mfa_recovery_codes WHERE user_id = :id AND used_at IS NULL)::int AS recovery`,
        { id: userId },
      );
      const row = result.rows[0];
      return {
        totp: row?.totp === true,
        webauthn: row?.webauthn === true,
        roleRequiresMfa: row?.role === true,
        recoveryCodesLeft: row?.recovery ?? 0,
      };
    },
  };
}

export type MfaStore = ReturnType<typeof createMfaStore>;
