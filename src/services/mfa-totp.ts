import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import type { CryptoBox } from '../shared/crypto-box.ts';
import { SEAL_CONTEXT } from '../shared/crypto-contexts.ts';
import type { MfaStore } from '../store/mfa.ts';

/** RFC 6238 parameters every authenticator app understands: SHA-1, 6 digits, 30 s, ±1 step. */
export const TOTP_PERIOD = 30;
export const TOTP_DIGITS = 6;
const TOLERANCE_STEPS = 1;

const aad = SEAL_CONTEXT.totpSecret;

/** Digits only, spaces allowed between groups ("123 456"); anything else is not a code. */
export function normalizeTotpCode(input: string): string | undefined {
  const code = input.replace(/[\s-]/g, '');
  return /^\d{6}$/.test(code) ? code : undefined;
}

/**
 * Checks a code against a secret at `epoch` (seconds) within ±1 step, accepting only time steps
 * after `afterStep` (the replay guard). Returns the matched time step, or undefined.
 */
export async function matchTotp(
  secret: string | Uint8Array,
  code: string,
  options: { epoch?: number; afterStep?: number; digits?: 6 | 8 } = {},
): Promise<number | undefined> {
  const epoch = options.epoch ?? Math.floor(Date.now() / 1000);
  const result = await verify({
    secret,
    token: code,
    epoch,
    period: TOTP_PERIOD,
    digits: options.digits ?? TOTP_DIGITS,
    algorithm: 'sha1',
    epochTolerance: TOLERANCE_STEPS * TOTP_PERIOD,
    ...(options.afterStep ? { afterTimeStep: options.afterStep } : {}),
  });
  if (!result.valid) return undefined;
  const step = (result as { timeStep?: number }).timeStep ?? Math.floor(epoch / TOTP_PERIOD) + ((result as { delta?: number }).delta ?? 0);
  if (options.afterStep !== undefined && step <= options.afterStep) return undefined;
  return step;
}

export type TotpEnrollment = { secret: string; uri: string; qrSvg: string };

/**
 * The authenticator app. A pending (unconfirmed) secret belongs to the flow that began it — the
 * sign-in's interaction uid, or the account page's session — and only that flow shows it again
 * or confirms it (R13): a secret begun by someone else who knows the password is never offered
 * to, or confirmed by, the account's owner in another flow.
 */
export function createTotpService({ store, box, issuerName }: { store: MfaStore; box: CryptoBox; issuerName: string }) {
  /** pendingFor: whether the unconfirmed secret was begun in that flow (the store keeps a keyed digest of it, S12). */
  type Current = { secret: string; sealed: string; lastStep: number; confirmed: boolean; pendingFor: (binding: string) => boolean };

  async function secretOf(userId: string): Promise<Current | undefined> {
    const row = await store.findTotp(userId);
    if (!row) return undefined;
    return {
      secret: box.open(row.secret_sealed, aad(userId)).toString('utf8'),
      sealed: row.secret_sealed,
      lastStep: Number(row.last_step),
      confirmed: row.confirmed_at !== null,
      pendingFor: (binding) => store.isPendingFor(row, binding),
    };
  }

  /** A sign-in code (no binding) for the confirmed secret, or an enrolment code for `binding`'s pending one. */
  async function check(userId: string, input: string, binding?: string): Promise<boolean> {
    const code = normalizeTotpCode(input);
    const current = code ? await secretOf(userId) : undefined;
    if (!code || !current) return false;
    if (binding === undefined ? !current.confirmed : current.confirmed || !current.pendingFor(binding)) return false;
    const step = await matchTotp(current.secret, code, { afterStep: current.lastStep });
    // The conditional UPDATE is the real replay guard: a concurrent twin loses here.
    const pending = binding === undefined ? undefined : { binding, secretSealed: current.sealed };
    return step !== undefined && (await store.acceptTotpStep(userId, step, pending));
  }

  return {
    /** Whether the user has a confirmed authenticator app. */
    async enabled(userId: string): Promise<boolean> {
      const row = await store.findTotp(userId);
      return row?.confirmed_at != null;
    },

    async status(userId: string): Promise<{ enabled: boolean; confirmedAt?: Date | undefined; lastUsedAt?: Date | undefined }> {
      const row = await store.findTotp(userId);
      if (!row?.confirmed_at) return { enabled: false };
      return { enabled: true, confirmedAt: row.confirmed_at, lastUsedAt: row.last_used_at ?? undefined };
    },

    /**
     * Starts (or restarts) enrollment in the flow `binding`: a fresh 160-bit secret, stored
     * sealed and unconfirmed, replacing any pending one. Returns undefined when an app is
     * already set up (remove it first).
     */
    async begin(userId: string, label: string, binding: string): Promise<TotpEnrollment | undefined> {
      const secret = generateSecret({ length: 20 });
      if (!(await store.putPendingTotp(userId, box.seal(secret, aad(userId)), binding))) return undefined;
      return present(secret, label);
    },

    /**
     * This flow's pending enrollment again (e.g. after a wrong code), so the QR code stays the
     * same; nothing when the pending secret was begun in another flow.
     */
    async pending(userId: string, label: string, binding: string): Promise<TotpEnrollment | undefined> {
      const current = await secretOf(userId);
      return current && !current.confirmed && current.pendingFor(binding) ? present(current.secret, label) : undefined;
    },

    /** Enrollment completes only with a valid code from the app, in the flow that began it. */
    confirm: (userId: string, code: string, binding: string) => check(userId, code, binding),

    /** A sign-in code: valid, within ±1 step, and not used before in its step. */
    verify: (userId: string, code: string) => check(userId, code),

    remove: (userId: string) => store.removeTotp(userId),
  };

  async function present(secret: string, label: string): Promise<TotpEnrollment> {
    const uri = generateURI({ issuer: issuerName, label, secret, period: TOTP_PERIOD, digits: TOTP_DIGITS, algorithm: 'sha1' });
    const qrSvg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { secret, uri, qrSvg };
  }
}

export type TotpService = ReturnType<typeof createTotpService>;
