import { expect } from 'chai';
import Provider from 'oidc-provider';
import pino from 'pino';
import { Writable } from 'node:stream';
import supertest from 'supertest';
import Koa from 'koa';
import { containProviderErrors } from '../../src/auth/provider-errors.ts';
import { securityHeaders } from '../../src/shared/koa-security-headers.ts';

/**
 * An error that escapes oidc-provider's routes must not reach Koa's default handler, which clears
 * the security headers, answers plain text and prints to stderr (found by the R12 fuzz pass).
 */
describe('errors escaping oidc-provider (R12)', function () {
  function build() {
    const lines: string[] = [];
    const logger = pino(
      { level: 'error' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString('utf8'));
          done();
        },
      }),
    );
    const provider = new Provider('http://127.0.0.1:9', { clients: [], features: { devInteractions: { enabled: false } } });
    provider.use(async function failOnPurpose(ctx, next) {
      if (ctx.path === '/explode') throw new Error('secret internal detail at /srv/app/src/x.ts:12');
      if (ctx.path === '/client-error') ctx.throw(400, 'bad request detail');
      await next();
    });
    containProviderErrors(provider, logger);
    // The auth app sets the security headers before handing the request to the provider.
    const app = new Koa();
    app.use(securityHeaders({ https: false }));
    app.use(async (ctx) => {
      ctx.respond = false;
      await provider.callback()(ctx.req, ctx.res);
    });
    return { agent: supertest(app.callback()), lines };
  }

  it('R12 an unexpected error keeps the security headers, answers server_error without detail, and is logged once', async function () {
    const { agent, lines } = build();
    const response = await agent.get('/explode').set('Accept', 'application/json');
    expect(response.status).to.equal(500);
    expect(response.body).to.deep.equal({
      error: 'server_error',
      error_description: 'The server could not complete the request. Please try again in a moment.',
    });
    expect(response.text).to.not.include('secret internal detail');
    expect(response.headers['content-security-policy']).to.include("frame-ancestors 'none'");
    expect(response.headers['x-content-type-options']).to.equal('nosniff');
    expect(response.headers['cache-control']).to.equal('no-store');
    expect(lines.filter((line) => line.includes('secret internal detail'))).to.have.length(1);
  });

  it('R12 a browser gets a short page with the same headers; a client error keeps its status without its text', async function () {
    const { agent } = build();
    const page = await agent.get('/explode').set('Accept', 'text/html');
    expect(page.status).to.equal(500);
    expect(page.headers['content-type']).to.match(/^text\/html/);
    expect(page.headers['content-security-policy']).to.include("default-src 'self'");
    const client = await agent.get('/client-error').set('Accept', 'application/json');
    expect(client.status).to.equal(400);
    expect((client.body as { error: string }).error).to.equal('invalid_request');
    expect(client.text).to.not.include('bad request detail');
    expect(client.headers['x-content-type-options']).to.equal('nosniff');
  });
});
