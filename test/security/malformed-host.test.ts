import { expect } from 'chai';
import { socketExchange, socketRequest, type SocketResponse } from '../helpers/raw-socket.ts';
import { startTestServers, type TestServers } from '../helpers/servers.ts';

/**
 * Found by the R12 fuzz pass before R2 landed: oidc-provider builds its absolute URLs from the
 * request (ctx.href), and a Host that is no valid authority (a port with a trailing dot, a port
 * over 65535, a space, an unclosed IPv6 bracket) made discovery, logout and the device pages
 * answer 500 (TypeError: Invalid URL); an HTTP/1.0 request without Host cached a discovery
 * document with http://.well-known/token for everyone. R2's canonical request (ISSUER's host
 * pinned for every request, src/auth/koa-canonical-request.ts) is the fix; these are the
 * spellings R2's own tests do not send.
 */
describe('R12 malformed, repeated or missing Host', function () {
  let servers: TestServers;

  before(async function () {
    servers = await startTestServers();
  });

  after(async function () {
    await servers.stop();
  });

  const issuerUrls = (response: SocketResponse, what: string): void => {
    const urls = response.body.toString('utf8').match(/https?:\/\/[^\s"'<>,]+/g) ?? [];
    for (const url of urls.filter((u) => !u.startsWith('https://rp.example.test')))
      expect(url.startsWith(`${servers.issuer}/`) || url === servers.issuer, `${what}: ${url}`).to.equal(true);
  };

  it('R12 an invalid Host never makes a 500 and never changes the URLs the auth server emits', async function () {
    const auth = new URL(servers.issuer);
    const port = Number(auth.port);
    const hosts = [`${auth.host}.`, 'evil.example:99999', 'a b', '[::1', 'x:y:z', 'evil.example:', '%65vil.example', ''];
    const targets: [string, string][] = [
      ['GET', '/.well-known/openid-configuration'],
      ['GET', '/session/end'],
      ['GET', '/device'],
      ['POST', '/device'],
      ['GET', '/auth?client_id=x'],
    ];
    for (const host of hosts) {
      for (const [method, target] of targets) {
        const what = `${method} ${target} with Host ${JSON.stringify(host)}`;
        const response = await socketRequest(port, {
          method,
          target,
          headers: [
            ['Host', host],
            ['Accept', 'application/json'],
          ],
        });
        expect(response.status, what).to.be.within(200, 499);
        issuerUrls(response, what);
      }
    }
    // Two Host fields: Node keeps the first; nothing may come from the second.
    const twice = await socketRequest(port, {
      method: 'GET',
      target: '/.well-known/openid-configuration',
      headers: [
        ['Host', auth.host],
        ['Host', 'evil.example'],
      ],
    });
    expect(twice.status).to.be.within(200, 499);
    issuerUrls(twice, 'two Host fields');
  });

  it('R12 an HTTP/1.0 request without Host cannot set the discovery document later callers get', async function () {
    const hostless = await socketExchange(
      Number(new URL(servers.issuer).port),
      Buffer.from('GET /.well-known/openid-configuration HTTP/1.0\r\n\r\n', 'latin1'),
    );
    expect(hostless.status).to.be.within(200, 499);
    issuerUrls(hostless, 'HTTP/1.0 without Host');
    const metadata = (await (await fetch(`${servers.issuer}/.well-known/openid-configuration`)).json()) as Record<string, string>;
    for (const name of ['token_endpoint', 'authorization_endpoint', 'jwks_uri', 'device_authorization_endpoint'])
      expect(metadata[name], name).to.match(new RegExp(`^${servers.issuer}/`));
  });
});
