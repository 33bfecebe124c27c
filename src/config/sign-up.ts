import type { Config } from './types.ts';

/**
 * Whether an account must have a verified address to finish signing in (REQUIRE_VERIFIED_EMAIL).
 * Unset, it follows SELF_REGISTRATION: a server that lets strangers in wants their addresses
 * proven; one whose accounts are all made by administrators keeps signing them in as before.
 */
export const verifiedEmailRequired = (config: Pick<Config, 'signUp'>): boolean =>
  config.signUp.requireVerifiedEmail ?? config.signUp.enabled;
