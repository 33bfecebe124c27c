import type * as client from 'openid-client';

/**
 * What a call throws or rejects with, or undefined if it succeeds: for asserting on a refusal.
 * It takes a function so that a synchronous throw is caught as well.
 */
export async function rejectionOf(call: () => unknown): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** The OAuth error code (e.g. invalid_grant) an openid-client call is refused with. */
export async function oauthErrorOf(call: () => Promise<unknown>): Promise<string | undefined> {
  return ((await rejectionOf(call)) as client.ResponseBodyError | undefined)?.error;
}
