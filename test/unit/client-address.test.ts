import type { IncomingMessage } from 'node:http';
import { expect } from 'chai';
import { clientAddressOf } from '../../src/shared/client-address.ts';

const request = (socket: string, forwardedFor?: string): IncomingMessage =>
  ({
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
    socket: { remoteAddress: socket },
  }) as unknown as IncomingMessage;

/** R13: the client address from the proxies TRUST_PROXY names (src/shared/client-address.ts). */
describe('R13 client address from X-Forwarded-For of trusted proxies only', function () {
  it('R13 walks from the socket and stops at the first address that is not a trusted proxy', function () {
    const proxies = clientAddressOf(['10.0.0.0/8', '127.0.0.1']);
    expect(proxies.of(request('127.0.0.1', '198.51.100.1, 203.0.113.9, 10.1.2.3'))).to.equal('203.0.113.9');
    expect(proxies.of(request('127.0.0.1', '203.0.113.9'))).to.equal('203.0.113.9');
    expect(proxies.of(request('127.0.0.1'))).to.equal('127.0.0.1');
    // Not a proxy: its header says nothing.
    expect(proxies.of(request('192.0.2.50', '203.0.113.9, 10.1.2.3'))).to.equal('192.0.2.50');
    // Every hop trusted: the leftmost address is the client.
    expect(proxies.of(request('10.0.0.1', '10.0.0.2, 10.0.0.3'))).to.equal('10.0.0.2');
  });

  it('R13 an IPv4-mapped socket address matches an IPv4 proxy range; IPv6 ranges work too', function () {
    expect(clientAddressOf(['10.0.0.0/8']).of(request('::ffff:10.0.0.5', '203.0.113.9'))).to.equal('203.0.113.9');
    expect(clientAddressOf(['fd00::/8']).of(request('fd00::1', '2001:db8::7'))).to.equal('2001:db8::7');
    expect(clientAddressOf(['fd00::/8']).of(request('2001:db8::1', '203.0.113.9'))).to.equal('2001:db8::1');
  });

  it('R13 a trusted proxy that forwards something that is not an address is itself the client', function () {
    expect(clientAddressOf(['127.0.0.1']).of(request('127.0.0.1', 'unknown'))).to.equal('127.0.0.1');
    expect(clientAddressOf(['127.0.0.1', '10.0.0.0/8']).of(request('127.0.0.1', 'garbage, 10.0.0.9'))).to.equal('10.0.0.9');
  });

  it('R13 false trusts nobody, true everybody (the leftmost entry); fromTrustedProxy looks at the socket peer', function () {
    expect(clientAddressOf(['false']).of(request('192.0.2.50', '203.0.113.9'))).to.equal('192.0.2.50');
    expect(clientAddressOf(['true']).of(request('192.0.2.50', '198.51.100.1, 203.0.113.9'))).to.equal('198.51.100.1');
    const proxies = clientAddressOf(['loopback']);
    expect(proxies.fromTrustedProxy(request('127.0.0.9'))).to.equal(true);
    expect(proxies.fromTrustedProxy(request('192.0.2.50', '127.0.0.1'))).to.equal(false);
    expect(clientAddressOf(['false']).fromTrustedProxy(request('127.0.0.1'))).to.equal(false);
  });
});
