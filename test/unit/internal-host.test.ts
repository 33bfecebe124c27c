import { expect } from 'chai';
import { applyClientPolicy, ClientPolicyError } from '../../src/services/client-policy.ts';
import { isInternalHost } from '../../src/shared/internal-host.ts';

/**
 * R15: the SSRF guard for the URLs the server fetches (jwks_uri, sector_identifier_uri). Every
 * spelling of an internal host is refused, whether it comes as a URL's hostname (already put in
 * WHATWG form) or as the raw text a caller wrote.
 */
describe('R15 isInternalHost: every spelling of an internal host', function () {
  const internal = [
    // Names: this machine, private suffixes, single labels; with trailing dots and in capitals.
    'localhost',
    'localhost.',
    'localhost..',
    'LOCALHOST.',
    'app.localhost.',
    'metadata.google.internal',
    'metadata.google.internal.',
    'METADATA.GOOGLE.INTERNAL.',
    'printer.local.',
    'router.home.arpa',
    'router.home.arpa.',
    'intranet',
    'intranet.',
    '.',
    '',
    // IPv4 loopback in every spelling WHATWG URL and inet_aton accept.
    '127.0.0.1',
    '127.0.0.1.',
    '127.1',
    '0x7f.1',
    '0x7f000001',
    '2130706433',
    '0177.0.0.1',
    '017700000001',
    '127.000.000.001',
    // The cloud metadata address in decimal, hex and octal spellings.
    '2852039166',
    '0xa9fea9fe',
    '0xA9.0xFE.0xA9.0xFE',
    '0251.0376.0251.0376',
    '169.254.43518',
    // Other IPv4 ranges that are not the public internet.
    '0.0.0.0',
    '0',
    '10.1.2.3',
    '169.254.169.254',
    '169.254.169.254.',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '100.64.0.1',
    '192.0.0.1',
    '198.18.0.1',
    '224.0.0.1',
    '255.255.255.255',
    // IPv6: loopback, unspecified, IPv4 embedded in every standard way, private and link-local.
    '::1',
    '[::1]',
    '[0:0:0:0:0:0:0:1]',
    '[0000:0000:0000:0000:0000:0000:0000:0001]',
    '::',
    '[::]',
    '[::ffff:127.0.0.1]',
    '::ffff:127.0.0.1',
    '[::ffff:7f00:1]',
    '[::ffff:8.8.8.8]',
    '[::ffff:169.254.169.254]',
    '[::ffff:a9fe:a9fe]',
    '[::FFFF:10.0.0.1]',
    '[0:0:0:0:0:ffff:7f00:1]',
    '[::ffff:0:7f00:1]',
    '[::ffff:0:8.8.8.8]',
    '[::127.0.0.1]',
    '[::7f00:1]',
    '[64:ff9b::7f00:1]',
    '[64:ff9b::8.8.8.8]',
    '[2002:7f00:1::]',
    '[2001::1]',
    '[2001:db8::1]',
    '[fc00::1]',
    '[fd12:3456::1]',
    '[fe80::1]',
    '[FE80::1]',
    '[ff02::1]',
    // Not a host at all.
    'exa mple.com',
    '[::1',
  ];
  const external = [
    'example.com',
    'example.com.',
    'EXAMPLE.COM',
    'localhost.example.com',
    'internal.example.com',
    'idp.xn--bcher-kva.example',
    '8.8.8.8',
    '8.8.8.8.',
    '[2606:4700:4700::1111]',
    '2606:4700:4700::1111',
    // Public IPv4 in the other spellings WHATWG URL accepts (all 8.8.8.8).
    '134744072',
    '0x08080808',
    '010.010.010.010',
  ];

  for (const host of internal) {
    it(`R15 refuses ${JSON.stringify(host)}`, function () {
      expect(isInternalHost(host)).to.equal(true);
    });
  }
  for (const host of external) {
    it(`R15 allows ${JSON.stringify(host)}`, function () {
      expect(isInternalHost(host)).to.equal(false);
    });
  }

  it('R15 the registration policy refuses jwks_uri and sector_identifier_uri on each internal spelling a URL can carry', function () {
    const hosts = [
      'localhost.',
      'metadata.google.internal.',
      '127.0.0.1.',
      '0x7f.1',
      '2130706433',
      '[::ffff:127.0.0.1]',
      '[::1]',
      '[::7f00:1]',
      '[64:ff9b::a9fe:a9fe]',
      '169.254.169.254.',
    ];
    for (const host of hosts) {
      for (const field of ['jwks_uri', 'sector_identifier_uri']) {
        const metadata: Record<string, unknown> = {
          redirect_uris: ['https://app.example/cb'],
          token_endpoint_auth_method: 'private_key_jwt',
          [field]: `https://${host}/keys`,
          ...(field === 'sector_identifier_uri' ? { jwks: { keys: [] } } : {}),
        };
        expect(() => applyClientPolicy(metadata, { operatorGranted: new Set(), byOperator: false }), `${field} on ${host}`)
          .to.throw(ClientPolicyError)
          .with.property('message')
          .that.matches(/internal hosts are refused/);
      }
    }
  });
});
