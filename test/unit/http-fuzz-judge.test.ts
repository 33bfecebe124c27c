import { expect } from 'chai';
import { judge, leakPatterns, POLLUTION_CANARY, type FuzzRequest } from '../helpers/http-fuzz.ts';
import { AUTH_ROUTES } from '../helpers/http-surface.ts';
import { repoRoot } from '../helpers/process.ts';
import { parseResponse } from '../helpers/raw-socket.ts';

/**
 * The R12 fuzz pass is only as good as its judge: each kind of bad response it must catch is
 * shown to it here, with a good response and an echoed input that must pass.
 */
describe('R12 the fuzz judge', function () {
  const leaks = leakPatterns(repoRoot);
  const request = (target = '/token', body?: string): FuzzRequest => ({
    server: 'auth',
    route: AUTH_ROUTES[0] ?? { server: 'auth', owner: 'middleware', methods: ['GET'], path: '/' },
    method: 'POST',
    target,
    headers: [['Host', '127.0.0.1:1']],
    ...(body === undefined ? {} : { body: Buffer.from(body) }),
  });
  const response = (
    status: number,
    body: string,
    headers: [string, string][] = [
      ['Content-Type', 'application/json'],
      ['X-Content-Type-Options', 'nosniff'],
    ],
  ) =>
    parseResponse(
      Buffer.from(
        `HTTP/1.1 ${status} X\r\n${[...headers, ['Content-Length', String(Buffer.byteLength(body))]].map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${body}`,
        'utf8',
      ),
    );
  const verdict = (status: number, body: string, headers?: [string, string][], sent = request()) =>
    judge(sent, response(status, body, headers), leaks);

  it('R12 passes a well-formed refusal, and input the server merely echoes', function () {
    expect(verdict(400, '{"error":"invalid_request"}')).to.deep.equal([]);
    const echoed = request('/token', 'scope=TypeError: x at y (file:///z.js:1:2)');
    expect(
      verdict(400, '{"error":"invalid_scope","error_description":"TypeError: x at y (file:///z.js:1:2)"}', undefined, echoed),
    ).to.deep.equal([]);
  });

  it('R12 flags server errors, stack traces, source paths and database or driver messages', function () {
    expect(verdict(500, '{}').join()).to.match(/status 500/);
    expect(verdict(503, '{}').join()).to.match(/status 503/);
    for (const body of [
      '{"detail":"TypeError: Cannot read properties of undefined"}',
      '{"e":"x\\n    at handler (file:///app/src/auth/app.ts:10:5)"}',
      `{"e":"${repoRoot}src/x.ts"}`,
      '{"e":"node_modules/oidc-provider/lib/x.js"}',
      '{"e":"insert into \\"users\\" (\\"email\\") values ($1) - duplicate key value violates unique constraint"}',
      '{"e":"select * from \\"records\\" where 1"}',
      '{"e":"relation \\"users\\" does not exist"}',
      '{"e":"WRONGTYPE Operation against a key"}',
      '{"e":"connect ECONNREFUSED 127.0.0.1:5432"}',
      '{"e":"Error: boom"}',
    ]) {
      expect(verdict(400, body).join(), body).to.match(/leak/);
    }
    // Headers are searched too.
    expect(
      verdict(401, '{}', [
        ['Content-Type', 'application/json'],
        ['X-Content-Type-Options', 'nosniff'],
        ['WWW-Authenticate', 'Bearer error_description="knex: Timeout acquiring a connection"'],
      ]).join(),
    ).to.match(/leak/);
  });

  it('R12 flags malformed HTTP, wrong content types and missing nosniff', function () {
    expect(verdict(200, 'not json').join()).to.match(/not JSON/);
    expect(
      verdict(200, 'hello', [
        ['Content-Type', 'application/octet-stream'],
        ['X-Content-Type-Options', 'nosniff'],
      ]).join(),
    ).to.match(/content type/);
    expect(verdict(200, '<html></html>', [['Content-Type', 'text/html']]).join()).to.match(/charset=utf-8.*|nosniff/);
    expect(verdict(200, '{}', [['Content-Type', 'application/json']]).join()).to.match(/nosniff/);
    const framed = parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}'));
    expect(judge(request(), framed, leaks).join()).to.match(/Content-Length 10/);
    const smuggled = parseResponse(Buffer.from('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n'));
    expect(judge(request(), smuggled, leaks).join()).to.match(/bytes after the response/);
    expect(judge(request(), parseResponse(Buffer.from('garbage')), leaks).join()).to.match(/no header section/);
  });

  it('R12 flags a polluted Object.prototype', function () {
    try {
      Object.defineProperty(Object.prototype, POLLUTION_CANARY, { value: 1, configurable: true });
      expect(verdict(400, '{}').join()).to.match(/polluted/);
    } finally {
      Reflect.deleteProperty(Object.prototype, POLLUTION_CANARY);
    }
  });
});
