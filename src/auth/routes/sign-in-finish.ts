import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { AccountService } from '../../services/accounts.ts';
import { acrNamed } from '../../services/mfa-policy.ts';
import { signInTime } from '../../services/session-validity.ts';
import type { ClientDisplay } from '../client-display.ts';
import {
  acrRequest,
  interactionProblem,
  type EmailGate,
  type InteractionDetails,
  type Pending,
  type SignInStart,
} from './interaction-details.ts';

/** The end of every sign-in (password, passkey, second factor, step-up): its acr named and its time dated. */
export function signInFinish({
  provider,
  accounts,
  clientOf,
  emailGate,
}: {
  provider: Provider;
  accounts: AccountService;
  /** The client the sign-in is for (whether it requires a second factor). */
  clientOf: (details: InteractionDetails) => Promise<ClientDisplay>;
  /** Asks for the address's code before a sign-in of an unverified account finishes (REQUIRE_VERIFIED_EMAIL). */
  emailGate?: EmailGate | undefined;
}) {
  /**
   * Ends the login prompt, dating the sign-in (`ts`, the ID token's auth_time) here rather than
   * when the browser comes back to the provider (R13): a sign-in finished before the account's
   * sessions were ended (sign out everywhere, a password change that signed out the others, an
   * MFA reset) stays older than that however late it resumes, and one whose first step came
   * before it does not finish at all. A full sign-in is dated when it completes; a step-up
   * completes the session's sign-in and keeps its time (docs/mfa.md, "Step-up"), so the request's
   * max_age, checked by the provider against that time when the step-up began, is checked again.
   */
  return async function finish(
    ctx: Context,
    details: InteractionDetails,
    accountId: string,
    result: { amr: string[]; acr: string },
    start: SignInStart,
    options: { stepUpFollows?: boolean } = {},
  ): Promise<void> {
    const account = await accounts.findActive(accountId);
    if (!account) throw interactionProblem('This account cannot sign in.');
    // An essential acr is answered with one of its values (OIDC Core §5.5.1.1); the policy met
    // it. A sign-in that cannot be named so that the request is met ends the request with
    // unmet_authentication_requirements: the provider would otherwise ask for it again, for ever
    // (R14). Only a passwordless sign-in may end short of it: a step-up then asks for the rest.
    const named = acrNamed(acrRequest(details, (await clientOf(details)).requireMfa), result.acr);
    if (named === undefined && !options.stepUpFollows) {
      await provider.interactionFinished(
        ctx.req,
        ctx.res,
        {
          error: 'unmet_authentication_requirements',
          error_description: 'the sign-in cannot meet the authentication context the request requires',
        },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    // Every factor passed: an address that must be verified first holds the result here (SU8).
    const held: Pending = {
      accountId,
      amr: result.amr,
      passed: result,
      startedAtMs: start.startedAtMs,
      sessionUid: start.sessionUid,
      verifyEmail: { stepUpFollows: options.stepUpFollows === true },
    };
    if (emailGate && (await emailGate(ctx, details, account, held))) return;
    const now = Date.now();
    const stepUp = start.sessionUid !== undefined;
    const time =
      typeof start.startedAtMs === 'number'
        ? signInTime(
            account,
            { startedAtMs: start.startedAtMs, datedAtMs: stepUp ? start.startedAtMs : now, sessionUid: start.sessionUid },
            now,
          )
        : undefined;
    if (!time) throw interactionProblem('Your sessions were ended while you were signing in. Start again.');
    const maxAge = Number(details.params.max_age);
    if (details.params.max_age !== undefined && Number.isInteger(maxAge) && Math.floor(now / 1000) - time.ts > maxAge) {
      throw interactionProblem('This sign-in took longer than the application allows. Go back to it and start again.');
    }
    if (time.waitMs > 0) await new Promise((resolve) => setTimeout(resolve, time.waitMs));
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId, amr: result.amr, acr: named ?? result.acr, remember: true, ts: time.ts } },
      { mergeWithLastSubmission: false },
    );
  };
}
