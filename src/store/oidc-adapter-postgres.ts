import type { Knex } from 'knex';
import type { AdapterPayload, OidcStateStore } from './oidc-adapter.ts';
import { grantableModels } from './oidc-adapter.ts';

type Row = { payload: AdapterPayload; consumed_at: Date | null };

const epoch = (date: Date): number => Math.floor(date.getTime() / 1000);

/**
 * oidc-provider state in one Postgres table (embedded mode, or no Redis configured). consume() is
 * the reuse rule's (src/auth/refresh-reuse.ts); this gives it the atomic mark (markConsumed).
 */
export function createPostgresStateStore(knex: Knex, model: string): OidcStateStore {
  const table = () => knex('oidc_payloads');
  const live = (query: Knex.QueryBuilder) =>
    query.where('type', model).andWhere((q) => {
      void q.whereNull('expires_at').orWhere('expires_at', '>', knex.fn.now());
    });

  const toPayload = (row: Row | undefined): AdapterPayload | undefined => {
    if (!row) return undefined;
    return row.consumed_at ? { ...row.payload, consumed: epoch(row.consumed_at) } : row.payload;
  };

  return {
    async upsert(id, payload, expiresIn) {
      await table()
        .insert({
          id,
          type: model,
          payload: JSON.stringify(payload),
          grant_id: grantableModels.has(model) ? (payload.grantId ?? null) : null,
          user_code: payload.userCode ?? null,
          uid: payload.uid ?? null,
          expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
        })
        .onConflict(['type', 'id'])
        .merge(['payload', 'grant_id', 'user_code', 'uid', 'expires_at']);
    },

    async find(id) {
      return toPayload(await live(table().where('id', id)).first<Row | undefined>('payload', 'consumed_at'));
    },

    async findByUid(uid) {
      return toPayload(await live(table().where('uid', uid)).first<Row | undefined>('payload', 'consumed_at'));
    },

    async findByUserCode(userCode) {
      return toPayload(await live(table().where('user_code', userCode)).first<Row | undefined>('payload', 'consumed_at'));
    },

    async markConsumed(id, grace) {
      // The conditional update is the atomic single-use guard.
      const updated = await table().where({ type: model, id }).whereNull('consumed_at').update({ consumed_at: knex.fn.now() });
      if (updated === 1) return 'first';
      if (grace.seconds > 0 && grace.count > 0) {
        // Counted in the row itself: concurrent UPDATEs of one row serialize and re-check the
        // WHERE, so no more than `count` reuses pass within the window.
        const reused = await table()
          .where({ type: model, id })
          .whereRaw('consumed_at >= clock_timestamp() - make_interval(secs => ?)', [grace.seconds])
          .whereRaw(`coalesce((payload->>'reuses')::int, 0) < ?`, [grace.count])
          .update({ payload: knex.raw(`jsonb_set(payload, '{reuses}', to_jsonb(coalesce((payload->>'reuses')::int, 0) + 1))`) });
        if (reused === 1) return 'grace';
      }
      return 'refused';
    },

    async consumedAtMs(id) {
      const row = await table().where({ type: model, id }).first<{ consumed_at: Date | null } | undefined>('consumed_at');
      return row?.consumed_at?.getTime();
    },

    async grantIdOf(id) {
      const row = await table().where({ type: model, id }).first<{ grant_id: string | null } | undefined>('grant_id');
      return row?.grant_id ?? undefined;
    },

    async destroy(id) {
      await table().where({ type: model, id }).delete();
    },

    async revokeByGrantId(grantId) {
      await table().where('grant_id', grantId).delete();
    },
  };
}

/** Deletes expired rows; run periodically by the process that owns the adapter. */
export async function sweepExpiredOidcPayloads(knex: Knex, batch = 5000): Promise<number> {
  return knex('oidc_payloads')
    .whereIn(['type', 'id'], knex('oidc_payloads').select('type', 'id').where('expires_at', '<', knex.fn.now()).limit(batch))
    .delete();
}
