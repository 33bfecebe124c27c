import type { Knex } from 'knex';
import { normalizeEmail } from '../shared/email.ts';
import type { RoleStore } from '../store/roles.ts';
import type { UserRow, UserStore } from '../store/users.ts';
import type { AuditService } from './audit.ts';
import type { Lockout } from './lockout.ts';
import type { PasswordHasher } from './passwords.ts';

/** An account as the services hand it to routes (its columns are the store's). */
export type { UserRow } from '../store/users.ts';

export type RequestContext = { ip?: string | undefined; userAgent?: string | undefined; clientId?: string | undefined };

export class PasswordPolicyViolation extends Error {
  readonly reason: string;
  /** A sentence for people ("The password is …"), when the policy gave one. */
  readonly description: string | undefined;
  constructor(reason: string, description?: string) {
    super(`password rejected: ${reason}`);
    this.name = 'PasswordPolicyViolation';
    this.reason = reason;
    this.description = description;
  }
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

/** One answer for a wrong and a locked current password (account page), as the login gives one. */
export const CURRENT_PASSWORD_REFUSED =
  'The current password is not right, or there were too many attempts. Wait a while before trying again.';

/** The password budget's key for an account: its normalised email, as stored and looked up (R7). */
const lockoutKeyOf = (email: string): string => normalizeEmail(email);

/** Checked on the normalised address, so full-width `＠` counts as `@`. */
export function isPlausibleEmail(email: string): boolean {
  const normalized = normalizeEmail(email);
  return email.length <= 320 && normalized.length <= 320 && EMAIL.test(normalized);
}

/** Standard OIDC claims for an account, filtered by the provider according to the granted scopes. */
export function accountClaims(user: UserRow): { sub: string; [claim: string]: unknown } {
  return {
    sub: user.id,
    email: user.email,
    email_verified: user.email_verified,
    ...(user.name ? { name: user.name } : {}),
    updated_at: Math.floor(user.updated_at.getTime() / 1000),
  };
}

export function createAccountService(deps: {
  knex: Knex;
  users: UserStore;
  roles: RoleStore;
  hasher: PasswordHasher;
  audit: AuditService;
  /** The password budgets of the lockout sentinel: per email (known or not) and per client IP. */
  lockouts: { account: Lockout; ip?: Lockout | undefined };
}) {
  const { knex, users, roles, hasher, audit, lockouts } = deps;

  /**
   * One password check reserved on both budgets (per email and per client address) before
   * argon2 runs (R14): whether a budget is spent and counting this attempt are one atomic step,
   * so concurrent wrong passwords cannot all be checked before the first is counted. Refused when
   * either budget is spent (the other's attempt is given back); a wrong password is already
   * counted; a right one clears the email's failures and gives the address's attempt back.
   */
  async function reserve(accountKey: string, context: RequestContext) {
    const ip = lockouts.ip && context.ip ? { lockout: lockouts.ip, id: context.ip } : undefined;
    const [account, address] = await Promise.all([lockouts.account.reserve(accountKey), ip?.lockout.reserve(ip.id)]);
    const releaseAddress = async () => {
      if (ip && address) await ip.lockout.release(ip.id, address);
    };
    if (!account.granted || address?.granted === false) {
      await Promise.all([lockouts.account.release(accountKey, account), releaseAddress()]);
      return {
        granted: false as const,
        unavailable: account.unavailable ?? address?.unavailable ?? false,
        lock: account.granted ? 'ip' : 'account',
      };
    }
    const started = account.started ? 'account' : address?.started ? 'ip' : undefined;
    return {
      granted: true as const,
      started,
      succeeded: () => Promise.all([lockouts.account.clear(accountKey), releaseAddress()]),
    };
  }

  return {
    async createUser(input: {
      email: string;
      password?: string | undefined;
      name?: string | undefined;
      roles?: readonly string[];
      /** An administrator vouches for the address (`users create --email-verified`); otherwise it is unverified. */
      emailVerified?: boolean;
    }): Promise<UserRow> {
      if (!isPlausibleEmail(input.email)) throw new Error('email is not a valid address');
      let passwordHash: string | null = null;
      if (input.password !== undefined) {
        const problem = await hasher.screen(input.password);
        if (problem) throw new PasswordPolicyViolation(problem, hasher.describe(problem));
        passwordHash = await hasher.hash(input.password);
      }
      const user = await knex.transaction(async (trx) => {
        const created = await users.insert(
          { email: input.email.trim(), name: input.name, passwordHash, emailVerified: input.emailVerified === true },
          trx,
        );
        await roles.assign(created.id, input.roles?.length ? input.roles : ['user'], trx);
        return created;
      });
      await audit.record({
        type: 'user.created',
        actorId: user.id,
        data: { roles: input.roles ?? ['user'], ...(user.email_verified ? { email_verified: true } : {}) },
      });
      return user;
    },

    /**
     * Returns the user only when the password is right, the account usable and not locked.
     * Unknown email, wrong password, disabled and locked account give the same answer; the
     * first three take the same time (T33). A locked email or address is refused before argon2
     * runs; failures count per normalised email whether or not it exists, so the lock does not
     * tell which accounts exist (T34).
     */
    async authenticate(email: string, password: string, context: RequestContext = {}): Promise<UserRow | undefined> {
      const accountKey = lockoutKeyOf(email);
      const failure = (user: UserRow | undefined, reason: string, data: Record<string, unknown> = {}) =>
        audit.record({
          type: 'login.password',
          outcome: 'failure',
          actorId: user?.id,
          ip: context.ip,
          userAgent: context.userAgent,
          clientId: context.clientId,
          data: { reason, ...data },
        });
      const held = await reserve(accountKey, context);
      if (!held.granted) {
        const user = isPlausibleEmail(email) ? await users.findByEmail(email) : undefined;
        await failure(user, held.unavailable ? 'lockout_unavailable' : 'locked', { lock: held.lock });
        return undefined;
      }
      const user = isPlausibleEmail(email) ? await users.findByEmail(email) : undefined;
      const { ok, rehash } = await hasher.verify(user?.password_hash ?? null, password);
      if (!user || !ok || user.disabled) {
        // Already counted by the reservation.
        const reason = !user ? 'unknown_user' : user.disabled ? 'disabled' : 'wrong_password';
        // invalid_now_locked is what the lockout metric counts (as for second factors).
        await failure(user, held.started ? 'invalid_now_locked' : reason, held.started ? { cause: reason, lock: held.started } : {});
        return undefined;
      }
      await held.succeeded();
      if (rehash) await users.updatePasswordHash(user.id, await hasher.hash(password));
      await audit.record({
        type: 'login.password',
        actorId: user.id,
        ip: context.ip,
        userAgent: context.userAgent,
        clientId: context.clientId,
      });
      return user;
    },

    /** The account as the provider and the API see it; disabled accounts do not exist for them. */
    async findActive(id: string): Promise<UserRow | undefined> {
      const user = await users.findById(id);
      return user && !user.disabled ? user : undefined;
    },

    /**
     * Changes the password after checking the current one (account page). The check spends the
     * same lockout budget as a sign-in (R5): per account (its normalised email) and per client
     * IP; a locked account is refused before argon2 runs, even with the right password, and
     * wrong and locked get one answer. A success clears the account's failures as a sign-in does.
     */
    async changePassword(
      userId: string,
      current: string,
      next: string,
      context: RequestContext = {},
    ): Promise<{ ok: true } | { ok: false; reason: string }> {
      const user = await users.findById(userId);
      const failure = async (reason: string, data: Record<string, unknown> = {}) => {
        await audit.record({
          type: 'password.changed',
          outcome: 'failure',
          actorId: userId,
          ip: context.ip,
          userAgent: context.userAgent,
          data: { reason, ...data },
        });
        return { ok: false as const, reason: CURRENT_PASSWORD_REFUSED };
      };
      if (!user) return failure('wrong_password');
      const held = await reserve(lockoutKeyOf(user.email), context);
      if (!held.granted) return failure(held.unavailable ? 'lockout_unavailable' : 'locked', { lock: held.lock });
      const { ok } = await hasher.verify(user.password_hash, current);
      if (!ok) {
        return failure(
          held.started ? 'invalid_now_locked' : 'wrong_password',
          held.started ? { cause: 'wrong_password', lock: held.started } : {},
        );
      }
      await held.succeeded();
      const problem = await hasher.screen(next);
      if (problem) return { ok: false, reason: hasher.describe(problem).replace(/^The password/, 'The new password') };
      await users.setPassword(userId, await hasher.hash(next));
      await audit.record({ type: 'password.changed', actorId: userId, ip: context.ip, userAgent: context.userAgent });
      return { ok: true };
    },

    /**
     * An administrator vouches for addresses (`portcullis users verify-email`): one account's, or
     * every account's (after an upgrade, before turning REQUIRE_VERIFIED_EMAIL on). Audited.
     */
    async vouchForEmail(target: { email: string } | { all: true }): Promise<{ verified: number; id?: string }> {
      if ('all' in target) {
        const verified = await users.markAllEmailsVerified();
        await audit.record({ type: 'email.verified', data: { via: 'administrator', accounts: verified } });
        return { verified };
      }
      const user = await users.findByEmail(target.email);
      if (!user) return { verified: 0 };
      if (!user.email_verified) {
        await users.markEmailVerified(user.id);
        await audit.record({ type: 'email.verified', actorId: user.id, data: { via: 'administrator' } });
      }
      return { verified: user.email_verified ? 0 : 1, id: user.id };
    },

    countUsers: () => users.count(),
  };
}

export type AccountService = ReturnType<typeof createAccountService>;
