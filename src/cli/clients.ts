import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type { Deps } from '../deps.ts';
import { createProvider } from '../auth/provider.ts';
import { OPERATOR_SCOPES } from '../shared/scopes.ts';
import { applyClientPolicy, ClientPolicyError } from '../services/client-policy.ts';
import { CliError, type Print, type WithDeps } from './context.ts';

export class ClientMetadataError extends Error {
  readonly error: string;
  constructor(error: string, description: string) {
    super(description);
    this.error = error;
  }
}

/**
 * Registers a client from RFC 7591 metadata: our registration policy (the same module the
 * registration endpoint runs), then oidc-provider's own client schema; returns the RFC 7591
 * response. The operator may grant `admin` and the account scopes, but only by naming them in
 * `scope`: a client created without `scope` gets the default set (DEFAULT_CLIENT_SCOPE).
 */
export async function createClient(deps: Deps, input: unknown): Promise<Record<string, unknown>> {
  if (!input || typeof input !== 'object' || Array.isArray(input)) {
    throw new ClientMetadataError('invalid_client_metadata', 'client metadata must be a JSON object');
  }
  const metadata = { ...(input as Record<string, unknown>) };
  for (const assigned of ['client_id', 'client_secret', 'registration_access_token', 'registration_client_uri']) {
    if (assigned in metadata) throw new ClientMetadataError('invalid_client_metadata', `${assigned} is assigned by the server`);
  }
  try {
    applyClientPolicy(metadata, { operatorGranted: new Set(OPERATOR_SCOPES), byOperator: true });
  } catch (error) {
    if (error instanceof ClientPolicyError) throw new ClientMetadataError(error.error, error.message);
    throw error;
  }
  await deps.keys.ensureSigningKeys();
  const provider = createProvider({
    config: deps.config,
    logger: deps.logger,
    accounts: deps.accounts,
    adapter: deps.oidcStorage.forProvider(),
    jwks: await deps.keys.privateJwks(),
    cookieKeys: ['cli-validation-only-not-used-for-cookies'],
  });
  const clientId = randomBytes(18).toString('base64url');
  const candidate: Record<string, unknown> = { ...metadata, client_id: clientId };
  // needsSecret is public API in oidc-provider but missing from its type definitions.
  const ClientModel = provider.Client as unknown as { needsSecret: (m: Record<string, unknown>) => boolean };
  if (ClientModel.needsSecret({ token_endpoint_auth_method: 'client_secret_basic', ...candidate })) {
    candidate.client_secret = randomBytes(32).toString('base64url');
  }
  try {
    await provider.Client.validate(candidate as unknown as Parameters<typeof provider.Client.validate>[0]);
  } catch (error) {
    const e = error as { error?: string; error_description?: string; message: string };
    throw new ClientMetadataError(e.error ?? 'invalid_client_metadata', e.error_description ?? e.message);
  }
  const issuedAt = Math.floor(Date.now() / 1000);
  await deps.stores.clients.upsert({ ...candidate, client_id_issued_at: issuedAt, client_id: clientId }, 'cli');
  const client = await provider.Client.find(clientId);
  if (!client) throw new Error('client was not stored');
  // The stored secret is a hash; the plain one is shown this once.
  return {
    ...client.metadata(),
    client_id_issued_at: issuedAt,
    ...(typeof candidate.client_secret === 'string' ? { client_secret: candidate.client_secret, client_secret_expires_at: 0 } : {}),
  };
}

/** `portcullis clients create|list|disable|enable`. */
export function registerClientCommands(program: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
  const clients = program.command('clients').description('manage OAuth clients');
  clients
    .command('create')
    .description('register a client from RFC 7591 metadata; prints the RFC 7591 response')
    .requiredOption('--json <metadata>', 'client metadata as a JSON object')
    .action(async (opts: { json: string }) => {
      let metadata: unknown;
      try {
        metadata = JSON.parse(opts.json);
      } catch {
        throw new CliError('--json is not valid JSON');
      }
      print(await withDeps((deps) => createClient(deps, metadata)));
    });
  clients
    .command('list')
    .description('list registered clients with created_by (cli or iat:<id>) and last_used_at; secrets are never shown')
    .action(async () => {
      print(await withDeps((deps) => deps.stores.clients.list()));
    });
  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    clients
      .command(`${name} <client_id>`)
      .description(disabled ? 'disable a client (its tokens can no longer be obtained)' : 're-enable a client (restarts its idle clock)')
      .action(async (clientId: string) => {
        const changed = await withDeps(async (deps) => {
          const found = await deps.stores.clients.setDisabled(clientId, disabled);
          if (found) await deps.audit.record({ type: disabled ? 'client.disabled' : 'client.enabled', clientId, data: { via: 'cli' } });
          return found;
        });
        if (!changed) throw new CliError(`no client ${clientId}`);
        print({ client_id: clientId, disabled });
      });
  }
}
