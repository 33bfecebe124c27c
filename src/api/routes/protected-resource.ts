import type { Middleware } from 'koa';
import { API_SCOPES } from '../../shared/scopes.ts';
import { DPOP_ALGS } from '../dpop-proof.ts';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * RFC 9728 protected resource metadata for this API, so a client holding nothing but the API's
 * URL (an MCP client, say) can find its authorization server: a 401 points here through the
 * `resource_metadata` challenge parameter, and this document points to the issuer.
 */
export function protectedResourceMetadata({ apiUrl, issuer }: { apiUrl: string; issuer: string }) {
  const api = new URL(apiUrl);
  const path = api.pathname === '/' ? '' : api.pathname;
  // §3.1: the well-known segment goes between the host and the resource's path.
  const metadataUrl = `${api.origin}${WELL_KNOWN}${path}`;
  const servedAt = new Set([`${WELL_KNOWN}${path}`, WELL_KNOWN]);
  const document = {
    resource: apiUrl,
    authorization_servers: [issuer],
    scopes_supported: [...API_SCOPES],
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: DPOP_ALGS,
    dpop_bound_access_tokens_required: false,
    resource_name: 'Portcullis API',
  };

  const middleware: Middleware = async function protectedResourceMiddleware(ctx, next) {
    if (servedAt.has(ctx.path) && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.body = document;
      return;
    }
    await next();
    // Every 401/403 challenge, whoever raised it, names the metadata (RFC 9728 §5.1).
    const challenge = ctx.response.get('WWW-Authenticate');
    if ((ctx.status === 401 || ctx.status === 403) && challenge && !challenge.includes('resource_metadata=')) {
      ctx.set('WWW-Authenticate', `${challenge}, resource_metadata="${metadataUrl}"`);
    }
  };

  return { metadataUrl, challenge: { resource_metadata: metadataUrl }, middleware };
}
