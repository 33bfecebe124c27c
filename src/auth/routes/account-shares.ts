import type { Context } from 'koa';
import type { Actor } from '../../services/records.ts';
import { canonicalUuid } from '../../shared/uuid.ts';
import { accountProblem, done, offerActor, type AccountPage } from './account-page.ts';

/** Accepting, declining and leaving shared records (R13), through the records service. */
export type ShareAnswers = {
  accept: (actor: Actor, recordId: string) => Promise<void>;
  decline: (actor: Actor, recordId: string) => Promise<void>;
  leave: (actor: Actor, recordId: string) => Promise<void>;
};

/** A record id from the path; anything else is an offer or share that does not exist. */
function offeredRecordId(ctx: Context): string {
  // Lowercased as in the API (src/shared/uuid.ts, R15).
  const id = canonicalUuid((ctx.params as { recordId: string }).recordId);
  if (id === undefined) throw accountProblem(404, 'No offer or share of this record is waiting for you.');
  return id;
}

/** The account page's answers to records other users offered to share (listed by account-overview.ts). */
export function accountShareRoutes({ post }: AccountPage, offers: ShareAnswers): void {
  // Offers of records (R13): accepting adds the record to the user's records, read only.
  post(
    '/offers/:recordId/accept',
    async (ctx, _session, user) => {
      await offers.accept(offerActor(ctx, user), offeredRecordId(ctx));
      done(ctx, 'offer-accepted');
    },
    { needs: 'session' },
  );

  post(
    '/offers/:recordId/decline',
    async (ctx, _session, user) => {
      await offers.decline(offerActor(ctx, user), offeredRecordId(ctx));
      done(ctx, 'offer-declined');
    },
    { needs: 'session' },
  );

  // Leaving a share the user accepted: its owner no longer sees the user's listings.
  post(
    '/shared-with-me/:recordId/leave',
    async (ctx, _session, user) => {
      await offers.leave(offerActor(ctx, user), offeredRecordId(ctx));
      done(ctx, 'share-left');
    },
    { needs: 'session' },
  );
}
