import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { DecryptionError, type CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import { StartupError } from '../shared/dev-keys.ts';

/**
 * The secrets the server makes for itself. Each is 32 random bytes, created by whichever process
 * starts first (the others read the winner's row) and kept sealed under MASTER_KEY, so a database
 * dump alone does not give them away and a master-key rotation re-seals them unchanged.
 */
export const SERVER_SECRETS = {
  /** Root of the keys that name and seal oidc-provider state at rest (src/store/oidc-adapter-sealed.ts, S10). */
  oidcState: 'oidc-state',
  /** Pepper of the recovery-code hashes (src/services/recovery-codes.ts, S6). */
  recoveryCodes: 'recovery-codes',
} as const;

export type ServerSecretName = (typeof SERVER_SECRETS)[keyof typeof SERVER_SECRETS];

/** The secret, created on first use; the same bytes for every process of the deployment. */
export async function loadServerSecret(knex: Knex, box: CryptoBox, name: ServerSecretName): Promise<Buffer> {
  const read = () => knex('server_secrets').where({ name }).first<{ secret_sealed: string } | undefined>('secret_sealed');
  let row = await read();
  if (!row) {
    // Concurrent first starts: one insert wins, everyone reads the winner's row.
    await knex('server_secrets')
      .insert({ name, secret_sealed: box.seal(randomBytes(32), SEAL_CONTEXT.serverSecret(name)) })
      .onConflict('name')
      .ignore();
    row = await read();
  }
  if (!row) throw new Error(`server secret ${name} was not stored`);
  try {
    return box.open(row.secret_sealed, SEAL_CONTEXT.serverSecret(name));
  } catch (error) {
    if (!(error instanceof DecryptionError)) throw error;
    throw new StartupError(
      `the server secret ${name} cannot be opened (${error.message}); during a MASTER_KEY rotation set MASTER_KEY_PREVIOUS to the old key until \`portcullis keys status\` is clean`,
    );
  }
}

/** Every server secret, for the composition root. */
export async function loadServerSecrets(knex: Knex, box: CryptoBox): Promise<Record<keyof typeof SERVER_SECRETS, Buffer>> {
  return {
    oidcState: await loadServerSecret(knex, box, SERVER_SECRETS.oidcState),
    recoveryCodes: await loadServerSecret(knex, box, SERVER_SECRETS.recoveryCodes),
  };
}
