import type { CryptoBox } from '../shared/crypto-box.ts';
import type { ReplayStore } from '../store/dpop-replay.ts';
import type { MfaStore } from '../store/mfa.ts';
import type { WebAuthnCredentialStore } from '../store/webauthn-credentials.ts';
import type { AuditService } from './audit.ts';
import type { Lockout } from './lockout.ts';
import { createMfaLockout } from './mfa-attempts.ts';
import { createTotpService } from './mfa-totp.ts';
import { createMfaService } from './mfa.ts';
import { createRecoveryCodeService } from './recovery-codes.ts';
import { createWebAuthnService } from './webauthn.ts';

/** Wires the second-factor services over their stores (built in the composition root, src/deps.ts). */
export function createMfa(deps: {
  store: MfaStore;
  credentials: WebAuthnCredentialStore;
  /** Claims a passwordless challenge's single use. */
  once: ReplayStore;
  box: CryptoBox;
  audit: AuditService;
  issuer: string;
  lockout: Lockout;
  /** The per-address budget of failed sign-ins, when configured (R13: spent by passkey answers that do not verify). */
  addressLockout?: Lockout | undefined;
  /** The key of the recovery-code hashes (server_secrets, S6). */
  recoveryCodePepper: Buffer;
}) {
  const issuer = new URL(deps.issuer);
  const { store } = deps;
  return createMfaService({
    store,
    totp: createTotpService({ store, box: deps.box, issuerName: 'Portcullis' }),
    recovery: createRecoveryCodeService({ store, pepper: deps.recoveryCodePepper }),
    webauthn: createWebAuthnService({
      credentials: deps.credentials,
      store,
      box: deps.box,
      once: deps.once,
      rpId: issuer.hostname,
      rpName: 'Portcullis',
      origin: issuer.origin,
    }),
    lockout: createMfaLockout(deps.lockout),
    addressLockout: deps.addressLockout,
    audit: deps.audit,
  });
}
