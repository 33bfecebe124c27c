import { readFileSync } from 'node:fs';
import { Agent, request, type ServerOptions } from 'node:https';
import type { Config } from '../config/types.ts';

/** A fetch-compatible function (jose's customFetch, openid-client's customFetch). */
export type TlsFetch = (
  url: string,
  init: { method?: string; headers?: HeadersInit; body?: string | URLSearchParams | null; signal?: AbortSignal | null },
) => Promise<Response>;

export class TlsFileError extends Error {}

function readPem(variable: string, path: string): Buffer {
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- a TLS_*_FILE path from operator configuration
    return readFileSync(path);
  } catch {
    throw new TlsFileError(`${variable}: cannot read ${path}`);
  }
}

/** HTTPS options for the public listeners, or undefined when the servers speak plain HTTP. */
export function serverTlsOptions(config: Pick<Config, 'tlsCertFile' | 'tlsKeyFile'>): ServerOptions | undefined {
  if (!config.tlsCertFile || !config.tlsKeyFile) return undefined;
  return { cert: readPem('TLS_CERT_FILE', config.tlsCertFile), key: readPem('TLS_KEY_FILE', config.tlsKeyFile), minVersion: 'TLSv1.2' };
}

/**
 * The auth server's internal listener: the same certificate, but the TLS handshake itself refuses
 * a client without a certificate signed by TLS_CLIENT_CA_FILE. A separate port rather than
 * per-path checks on the public one: browsers and relying parties must never be asked for a
 * certificate, and /jwks stays public there as OpenID Connect requires.
 */
export function internalTlsOptions(config: Pick<Config, 'tlsCertFile' | 'tlsKeyFile' | 'tlsClientCaFile'>): ServerOptions | undefined {
  const base = serverTlsOptions(config);
  if (!base || !config.tlsClientCaFile) return undefined;
  return { ...base, ca: readPem('TLS_CLIENT_CA_FILE', config.tlsClientCaFile), requestCert: true, rejectUnauthorized: true };
}

/**
 * fetch over a dedicated https.Agent, for the API's calls to the auth server: a private CA
 * (API_CA_FILE) and a client certificate (API_CLIENT_CERT_FILE/KEY_FILE) for mTLS. The global
 * fetch cannot take either without the undici package, which we do not depend on.
 */
export function agentFetch(agent: Agent): TlsFetch {
  return (url, init) =>
    new Promise<Response>((resolve, reject) => {
      const headers = Object.fromEntries(new Headers(init.headers ?? {}).entries());
      const req = request(url, { agent, method: init.method ?? 'GET', headers, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const item of Array.isArray(value) ? value : [value ?? '']) responseHeaders.append(name, item);
          }
          const status = res.statusCode ?? 502;
          const empty = chunks.length === 0 || status === 204 || status === 304;
          resolve(new Response(empty ? null : Buffer.concat(chunks), { status, headers: responseHeaders }));
        });
      });
      req.on('error', reject);
      req.end(init.body === undefined || init.body === null ? undefined : String(init.body));
    });
}

/** The API's fetch for internal calls, or undefined when neither a CA nor a client certificate is configured. */
export function apiInternalFetch(config: Pick<Config, 'apiClientCertFile' | 'apiClientKeyFile' | 'apiCaFile'>): TlsFetch | undefined {
  if (!config.apiCaFile && !config.apiClientCertFile) return undefined;
  const agent = new Agent({
    keepAlive: true,
    ...(config.apiCaFile ? { ca: readPem('API_CA_FILE', config.apiCaFile) } : {}),
    ...(config.apiClientCertFile && config.apiClientKeyFile
      ? { cert: readPem('API_CLIENT_CERT_FILE', config.apiClientCertFile), key: readPem('API_CLIENT_KEY_FILE', config.apiClientKeyFile) }
      : {}),
  });
  return agentFetch(agent);
}
