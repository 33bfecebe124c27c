import { errors } from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';

export type { Adapter, AdapterPayload };

/** Models whose tokens belong to a grant and die with it (revokeByGrantId). */
export const grantableModels = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** Models that are redeemed once; a second redemption is refused by the adapter itself. */
export const grantSourceModels = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * oidc-provider checks `consumed` and then calls consume(): two concurrent redemptions can
 * both pass the check. Our adapters mark consumption atomically and, when they lose the race,
 * revoke the grant and answer with invalid_grant (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
 */
export function alreadyConsumed(model: string): Error {
  return new errors.InvalidGrant(`${model === 'RefreshToken' ? 'refresh token' : 'grant'} already used`);
}
