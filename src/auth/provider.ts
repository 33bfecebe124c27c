import Provider, { type errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { Config } from '../config/types.ts';
import type { Logger } from '../shared/logger.ts';
import { buildProviderConfiguration, type ProviderConfigDeps } from './provider-config.ts';
import { assertProductionProvider } from '../config/production-checks.ts';
import { providerCanonicalRequest } from './koa-canonical-request.ts';
import { keepApiScopesOutOfOpenIdGrants } from './api-scope-grants.ts';
import { containProviderErrors } from './provider-errors.ts';

/** Creates the provider and forwards its error events to our logs. */
export function createProvider(deps: ProviderConfigDeps & { config: Config; logger: Logger }): Provider {
  const configuration = buildProviderConfiguration(deps);
  // T43: in production, refuse a development-grade provider configuration.
  assertProductionProvider(deps.config, configuration);
  const provider = new Provider(deps.config.issuer, configuration);
  // Never from the request's forwarding headers: host, scheme and client address are pinned by
  // the auth app's edge (koa-canonical-request.ts), first of the provider's middleware (R2).
  provider.proxy = false;
  // API scopes are granted for the API resource only, never read from a grant's OpenID part (R13).
  keepApiScopesOutOfOpenIdGrants(provider);
  provider.use(providerCanonicalRequest({ issuer: deps.config.issuer }));
  // Outermost of all: an error escaping a route keeps our headers and reaches our logger.
  containProviderErrors(provider, deps.logger);
  provider.on('server_error', (ctx, error) => {
    deps.logger.error({ err: error, path: ctx.path }, 'oidc-provider server error');
  });
  const refused = (event: string) => (_ctx: KoaContextWithOIDC, error: errors.OIDCProviderError) => {
    deps.logger.info({ event, error: error.message, description: error.error_description }, 'oidc request refused');
  };
  provider.on('grant.error', refused('grant.error'));
  provider.on('authorization.error', refused('authorization.error'));
  provider.on('end_session.error', refused('end_session.error'));
  provider.on('userinfo.error', refused('userinfo.error'));
  provider.on('introspection.error', refused('introspection.error'));
  provider.on('revocation.error', refused('revocation.error'));
  return provider;
}
