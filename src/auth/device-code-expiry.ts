import type { Adapter } from '../store/oidc-adapter.ts';

/** How long a device code stays readable after it expires: long enough for a late poll to learn why. */
export const EXPIRED_DEVICE_CODE_KEPT_SECONDS = 600;

/**
 * RFC 8628 §3.5: a device polling with a code past its lifetime is answered `expired_token`, so
 * it knows to start again rather than treating the code as never issued. oidc-provider answers
 * that from the stored code's `exp` (it reads device codes ignoring expiry, then checks it), but
 * only while the store still holds the code; stored for exactly its lifetime, it is gone at
 * expiry and the answer becomes `invalid_grant`, and an expired user code on the device page
 * reads as a wrong guess. The store keeps device codes this much longer than their lifetime;
 * the payload's `exp` is untouched, so nothing accepts them once expired (the token endpoint and
 * the device page both check it).
 */
export function withExpiredDeviceCodesKept(inner: Adapter): Adapter {
  return {
    ...inner,
    upsert: (id, payload, expiresIn) =>
      inner.upsert(id, payload, expiresIn === undefined ? undefined : expiresIn + EXPIRED_DEVICE_CODE_KEPT_SECONDS),
  };
}
