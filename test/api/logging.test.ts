import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { pino } from 'pino';
import Koa from 'koa';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { bearerAuth } from '../../src/api/koa-bearer-auth.ts';
import { requestLogger } from '../../src/shared/koa-request-logger.ts';
import { redactPaths } from '../../src/shared/logger.ts';

/** Nothing sensitive in logs: tokens, passwords and record content are redacted by pino. */
describe('log redaction for the resource API', function () {
  it('redacts record labels, data and sealed payloads, and bearer tokens', function () {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ redact: { paths: redactPaths, censor: '[redacted]' } }, sink);
    logger.info({
      record: { id: 'r1', label: 'Passport', data: { number: 'X1234567' }, payload_sealed: 'v1.d1.aaa.bbb' },
      key: { key_wrapped: 'v1.m-abc.ccc.ddd' },
      req: { headers: { authorization: 'Bearer eyJhbGciOi' } },
    });
    const line = lines.join('');
    for (const secret of ['Passport', 'X1234567', 'v1.d1.aaa.bbb', 'v1.m-abc', 'eyJhbGciOi']) expect(line).to.not.include(secret);
    expect(line).to.include('"id":"r1"');
  });
});

/** Issue 8: refusing a request must not cost more than serving it, so both log alike. */
describe('request log level', function () {
  async function linesFor(level: string, statuses: number[]): Promise<{ level: number; status: number }[]> {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const app = new Koa();
    app.use(requestLogger({ logger: pino({ level }, sink), trustsPeer: () => false }));
    app.use((ctx) => {
      ctx.status = Number(ctx.path.slice(1));
      ctx.body = {};
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { port } = server.address() as AddressInfo;
      for (const status of statuses) await (await fetch(`http://127.0.0.1:${port}/${status}`)).arrayBuffer();
    } finally {
      server.close();
    }
    return lines.map((line) => JSON.parse(line) as { level: number; status: number });
  }

  it('logs refused requests (4xx) at info like served ones, so at warn neither costs a log line', async function () {
    expect(await linesFor('warn', [200, 401, 403, 429])).to.deep.equal([]);
    const info = await linesFor('info', [200, 401, 403]);
    expect(info.map((l) => [l.status, l.level])).to.deep.equal([
      [200, 30],
      [401, 30],
      [403, 30],
    ]);
    const errors = await linesFor('warn', [503]);
    expect(errors.map((l) => [l.status, l.level])).to.deep.equal([[503, 50]]);
  });
});

/** Issue 7: request ids propagate from the API to the auth server on the JWKS fetch. */
describe('X-Request-Id propagation', function () {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    return { lines, logger: pino({ level: 'info' }, sink) };
  }

  async function serve(app: Koa): Promise<{ url: string; close(): void }> {
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
  }

  it('sends the id of the API request that triggered a JWKS fetch, and the auth server logs it; garbage ids are replaced', async function () {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const authLog = capture();
    const auth = new Koa();
    // The auth server is not behind a trusted proxy here: the caller's id is logged beside its own.
    auth.use(requestLogger({ logger: authLog.logger, trustsPeer: () => false }));
    auth.use((ctx) => {
      ctx.body = { keys: [jwk] };
    });
    const authServer = await serve(auth);
    const api = new Koa();
    api.use(requestLogger({ logger: capture().logger, trustsPeer: () => true }));
    api.use(bearerAuth({ issuer: authServer.url, audience: 'https://api.example.test', jwksUrl: `${authServer.url}/jwks` }));
    api.use((ctx) => {
      ctx.body = { ok: true };
    });
    const apiServer = await serve(api);
    try {
      const token = await new SignJWT({ client_id: 'c1', scope: 'records:read' })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' })
        .setIssuer(authServer.url)
        .setAudience('https://api.example.test')
        .setSubject('u1')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      const response = await fetch(`${apiServer.url}/v1/me`, { headers: { Authorization: `Bearer ${token}`, 'X-Request-Id': 'abc-123' } });
      expect(response.status).to.equal(200);
      expect(response.headers.get('x-request-id')).to.equal('abc-123');
      const jwksLine = authLog.lines.find((line) => line.path === '/jwks');
      expect(jwksLine?.callerReqId).to.equal('abc-123');
      expect(jwksLine?.reqId).to.be.a('string').and.not.equal('abc-123');

      // A malformed id (spaces, a newline, too long) is never echoed: a fresh one replaces it.
      for (const garbage of ['has spaces', 'x'.repeat(129), 'a"b']) {
        const refused = await fetch(`${apiServer.url}/v1/me`, { headers: { Authorization: `Bearer ${token}`, 'X-Request-Id': garbage } });
        expect(refused.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
      }
    } finally {
      apiServer.close();
      authServer.close();
    }
  });
});
