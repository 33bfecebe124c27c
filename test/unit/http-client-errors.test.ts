import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { answerClientErrors } from '../../src/shared/http-client-errors.ts';
import { serialize, socketExchange } from '../helpers/raw-socket.ts';

/**
 * RFC 9112 §3: a request line past the header limit is 414 URI Too Long; every other request
 * Node's parser refuses is answered as Node answers it (431 for large headers, 400 for the rest).
 * A plain http.Server on loopback, with the handler the servers install (src/server.ts).
 */
describe('answerClientErrors: what a request the parser refuses gets', function () {
  let server: Server;
  let port: number;

  before(async function () {
    server = createServer((_req, res) => res.end('ok'));
    answerClientErrors(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async function () {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const send = (target: string, headers: [string, string][] = [['Host', 'a.test']]) =>
    socketExchange(port, serialize({ method: 'GET', target, headers }));

  it('a 64 KiB request-target: 414, the connection closed', async function () {
    const response = await send(`/auth?state=${'a'.repeat(64 * 1024)}`);
    expect(response.status).to.equal(414);
    expect(response.problems).to.deep.equal([]);
  });

  it('a request line just past the 16 KiB limit, with short headers after it: 414', async function () {
    expect((await send(`/${'a'.repeat(16 * 1024 + 10)}`)).status).to.equal(414);
  });

  it('a short request line with 20 KiB of headers: 431, as Node answers', async function () {
    expect(
      (
        await send('/', [
          ['Host', 'a.test'],
          ['X-Big', 'b'.repeat(20 * 1024)],
        ])
      ).status,
    ).to.equal(431);
  });

  it('a request line that is not HTTP: 400, as Node answers', async function () {
    const response = await socketExchange(port, Buffer.from('NOT HTTP AT ALL\r\n\r\n', 'latin1'));
    expect(response.status).to.equal(400);
  });

  it('a well-formed request is served', async function () {
    expect((await send('/')).status).to.equal(200);
  });
});
