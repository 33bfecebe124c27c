#!/usr/bin/env node
/**
 * An example command-line client for Portcullis: signs in with the device authorization grant
 * (RFC 8628), keeps the refresh token in the user's config directory (mode 0600), and calls the
 * resource API.
 *
 *   node examples/device-cli.ts login   # shows a code and a URL, waits for you to approve
 *   node examples/device-cli.ts me      # GET {API_URL}/v1/me with a fresh access token
 *   node examples/device-cli.ts logout  # revokes the refresh token and forgets it
 *
 * Settings: --issuer / PORTCULLIS_ISSUER, --client-id / PORTCULLIS_CLIENT_ID, --api-url /
 * PORTCULLIS_API_URL, --scope / PORTCULLIS_SCOPE. Plain http is allowed for 127.0.0.1 and
 * localhost only (development). Register the client once with, for example:
 *
 *   portcullis clients create --json '{"client_name":"Portcullis CLI","token_endpoint_auth_method":"none",
 *     "grant_types":["urn:ietf:params:oauth:grant-type:device_code","refresh_token"],"scope":"openid offline_access records:read"}'
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as client from 'openid-client';

type Stored = { issuer: string; client_id: string; refresh_token: string };

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    issuer: { type: 'string', default: process.env.PORTCULLIS_ISSUER ?? 'http://localhost:3000' },
    'client-id': { type: 'string', default: process.env.PORTCULLIS_CLIENT_ID ?? '' },
    'api-url': { type: 'string', default: process.env.PORTCULLIS_API_URL ?? 'http://localhost:4000' },
    scope: { type: 'string', default: process.env.PORTCULLIS_SCOPE ?? 'openid offline_access records:read' },
  },
});
const [command = 'login'] = positionals;
const issuer = new URL(values.issuer);
const apiUrl = values['api-url'].replace(/\/$/, '');
const clientId = values['client-id'];

/** XDG Base Directory: $XDG_CONFIG_HOME/portcullis, else ~/.config/portcullis. */
const configDir = join(process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'portcullis');
const credentialsFile = join(configDir, 'credentials.json');

const isLoopback = (url: URL): boolean => ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);

async function discover(): Promise<client.Configuration> {
  if (!clientId) throw new Error('set --client-id or PORTCULLIS_CLIENT_ID');
  const insecure = issuer.protocol === 'http:' && isLoopback(issuer);
  return client.discovery(issuer, clientId, undefined, client.None(), insecure ? { execute: [client.allowInsecureRequests] } : undefined);
}

/** Written to a temporary file created 0600 and renamed over the old one, so it is never readable by others. */
async function save(stored: Stored): Promise<void> {
  await mkdir(configDir, { recursive: true, mode: 0o700 });
  const temporary = `${credentialsFile}.${String(process.pid)}.tmp`;
  await writeFile(temporary, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await rename(temporary, credentialsFile);
}

async function load(): Promise<Stored> {
  try {
    return JSON.parse(await readFile(credentialsFile, 'utf8')) as Stored;
  } catch {
    throw new Error(`not signed in (no ${credentialsFile}); run: device-cli login`);
  }
}

async function callMe(accessToken: string): Promise<void> {
  const response = await fetch(`${apiUrl}/v1/me`, { headers: { Authorization: `Bearer ${accessToken}` } });
  const body = await response.text();
  if (!response.ok) throw new Error(`GET /v1/me answered ${String(response.status)}: ${body}`);
  process.stdout.write(`${body}\n`);
}

async function login(): Promise<void> {
  const config = await discover();
  const device = await client.initiateDeviceAuthorization(config, { scope: values.scope, resource: apiUrl });
  process.stderr.write(
    `\nTo sign in, open ${device.verification_uri} and enter the code\n\n    ${device.user_code}\n\n` +
      `or open ${device.verification_uri_complete ?? device.verification_uri}\n` +
      `Check that the page shows the same code. Waiting for approval…\n`,
  );
  // openid-client waits `interval` seconds between polls and backs off on slow_down.
  const tokens = await client.pollDeviceAuthorizationGrant(config, device, { resource: apiUrl });
  if (!tokens.refresh_token) throw new Error('no refresh token was issued (is offline_access allowed for this client?)');
  await save({ issuer: issuer.href, client_id: clientId, refresh_token: tokens.refresh_token });
  process.stderr.write(`Signed in. Credentials saved to ${credentialsFile}\n`);
  await callMe(tokens.access_token);
}

async function me(): Promise<void> {
  const stored = await load();
  const config = await discover();
  const tokens = await client.refreshTokenGrant(config, stored.refresh_token, { resource: apiUrl });
  // Refresh tokens rotate: keep the new one, or the next run is refused.
  if (tokens.refresh_token) await save({ ...stored, refresh_token: tokens.refresh_token });
  await callMe(tokens.access_token);
}

async function logout(): Promise<void> {
  const stored = await load();
  await client.tokenRevocation(await discover(), stored.refresh_token, { token_type_hint: 'refresh_token' });
  await rm(credentialsFile, { force: true });
  process.stderr.write('Signed out.\n');
}

const commands: Record<string, () => Promise<void>> = { login, me, logout };
const run = commands[command];
if (!run) {
  process.stderr.write(`usage: device-cli [login|me|logout] [--issuer URL] [--client-id ID] [--api-url URL]\n`);
  process.exitCode = 2;
} else {
  run().catch((error: unknown) => {
    const message =
      error instanceof client.ResponseBodyError
        ? `${error.error}: ${error.error_description ?? ''}`
        : error instanceof Error
          ? error.message
          : String(error);
    process.stderr.write(`error: ${message}\n`);
    process.exitCode = 1;
  });
}
