import { randomBytes } from 'node:crypto';
import type { Deps } from '../../src/deps.ts';
import { createClient } from '../../src/cli/clients.ts';

export const uniqueEmail = (label = 'user'): string => `${label}.${randomBytes(5).toString('hex')}@example.test`;

export async function createTestUser(deps: Deps, options: { roles?: string[]; password?: string; name?: string } = {}) {
  const email = uniqueEmail();
  const password = options.password ?? `pw-${randomBytes(8).toString('hex')}`;
  const user = await deps.accounts.createUser({ email, password, name: options.name ?? 'Test Person', roles: options.roles ?? ['user'] });
  return { id: user.id, email, password };
}

/** Registers a client through the same path as `portcullis clients create`. */
export async function createTestClient(deps: Deps, metadata: Record<string, unknown> = {}) {
  const registered = await createClient(deps, {
    client_name: 'Test RP',
    redirect_uris: ['https://rp.example.test/cb'],
    post_logout_redirect_uris: ['https://rp.example.test/bye'],
    grant_types: ['authorization_code', 'refresh_token'],
    ...metadata,
  });
  return registered as { client_id: string; client_secret?: string } & Record<string, unknown>;
}
