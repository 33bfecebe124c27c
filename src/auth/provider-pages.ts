import type { KoaContextWithOIDC } from 'oidc-provider';
import { renderView } from './views.ts';

const htmlPage = (ctx: KoaContextWithOIDC, body: string, status?: number): void => {
  if (status) ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
};

// A Map, like every table looked up with text from outside (R12).
const friendlyErrors = new Map<string, string>(
  Object.entries({
    invalid_redirect_uri: 'The application sent you here with a return address it has not registered.',
    invalid_client: 'The application that sent you here is not known to this server.',
    invalid_request: 'The request from the application was not valid.',
    session_not_found: 'Your sign-in session has expired or was opened in another browser.',
    access_denied: 'The request was refused.',
    temporarily_unavailable: 'The service is briefly unavailable. Please try again in a moment.',
  }),
);

/**
 * The pages oidc-provider renders itself, in our templates (provider-config.ts hands them over):
 * its errors (a friendly text per known error code, nothing else of the error shown as markup),
 * and the RP-initiated logout's confirmation and done pages.
 */
export function providerPages(issuer: string) {
  return {
    logoutSource: (ctx: KoaContextWithOIDC, form: string): void => {
      htmlPage(ctx, renderView('logout', { host: new URL(issuer).host, form, clientName: ctx.oidc.client?.clientName }));
    },
    postLogoutSuccessSource: (ctx: KoaContextWithOIDC): void => {
      htmlPage(ctx, renderView('logged-out', { clientName: ctx.oidc.client?.clientName }));
    },
    renderError: (ctx: KoaContextWithOIDC, out: { error: string; error_description?: string | undefined }): void => {
      const code = out.error;
      htmlPage(
        ctx,
        renderView('error', {
          heading: 'Something went wrong',
          message: friendlyErrors.get(code) ?? 'The request could not be completed.',
          code,
          description: out.error_description,
        }),
      );
    },
  };
}
