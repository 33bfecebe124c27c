import { createHash, randomBytes } from 'node:crypto';
import type { Knex } from 'knex';

type Row = {
  id: string;
  token_hash: string;
  note: string | null;
  expires_at: Date | null;
  max_uses: number | null;
  uses: number;
  revoked_at: Date | null;
  /** Operator scopes the clients it registers may hold (space-separated; '' for none). */
  allowed_scope: string;
  created_at: Date;
};

export type InitialAccessToken = Omit<Row, 'token_hash'>;

/** Whether a token can still register clients, and if not, why. */
export type InitialAccessTokenState = 'active' | 'revoked' | 'expired' | 'used_up';

export function stateOf(token: InitialAccessToken, now = new Date()): InitialAccessTokenState {
  if (token.revoked_at) return 'revoked';
  if (token.expires_at && token.expires_at <= now) return 'expired';
  if (token.max_uses !== null && token.uses >= token.max_uses) return 'used_up';
  return 'active';
}

/** Tokens carry a recognisable prefix so secret scanners can find leaked ones. */
const PREFIX = 'piat_';

export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

const present = ({ token_hash: _hash, ...rest }: Row): InitialAccessToken => rest;

/**
 * RFC 7591 initial access tokens. Only the SHA-256 of a token is stored (it is 256 random
 * bits, so a fast hash is enough); redeeming one is a single atomic UPDATE, so max_uses holds
 * under concurrent registrations.
 */
export function createInitialAccessTokenStore(knex: Knex) {
  return {
    async create(options: {
      ttlSeconds?: number;
      maxUses?: number;
      note?: string;
      /** Checked by the caller (the CLI) against IAT_GRANTABLE_SCOPES; the provider honours no others. */
      allowedScopes?: readonly string[];
    }): Promise<{ token: string; record: InitialAccessToken }> {
      const token = `${PREFIX}${randomBytes(32).toString('base64url')}`;
      const [row] = await knex<Row>('initial_access_tokens')
        .insert({
          token_hash: hashToken(token),
          note: options.note ?? null,
          max_uses: options.maxUses ?? null,
          allowed_scope: [...new Set(options.allowedScopes ?? [])].join(' '),
          expires_at: options.ttlSeconds ? new Date(Date.now() + options.ttlSeconds * 1000) : null,
        })
        .returning('*');
      return { token, record: present(row as Row) };
    },

    /** Counts one use if the token is live; undefined when unknown, expired, revoked or used up. */
    async redeem(token: string): Promise<InitialAccessToken | undefined> {
      if (!token.startsWith(PREFIX) || token.length > 256) return undefined;
      const [row] = await knex<Row>('initial_access_tokens')
        .where({ token_hash: hashToken(token) })
        .whereNull('revoked_at')
        .where((q) => {
          void q.whereNull('expires_at').orWhere('expires_at', '>', knex.fn.now());
        })
        .where((q) => {
          void q.whereNull('max_uses').orWhereRaw('uses < max_uses');
        })
        .update({ uses: knex.raw('uses + 1') })
        .returning('*');
      return row ? present(row) : undefined;
    },

    /** Gives back a use that did not end in a registration (the request was refused). */
    async release(id: string): Promise<void> {
      await knex('initial_access_tokens')
        .where({ id })
        .where('uses', '>', 0)
        .update({ uses: knex.raw('uses - 1') });
    },

    async list(): Promise<(InitialAccessToken & { state: InitialAccessTokenState })[]> {
      const rows = await knex<Row>('initial_access_tokens').orderBy('created_at');
      return rows.map((row) => {
        const token = present(row);
        return { ...token, state: stateOf(token) };
      });
    },

    async revoke(id: string): Promise<boolean> {
      if (!/^[0-9a-f-]{36}$/i.test(id)) return false;
      const count = await knex('initial_access_tokens').where({ id }).whereNull('revoked_at').update({ revoked_at: knex.fn.now() });
      return count > 0;
    },
  };
}

export type InitialAccessTokenStore = ReturnType<typeof createInitialAccessTokenStore>;
