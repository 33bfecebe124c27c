import { expect } from 'chai';
import {
  applyClientPolicy,
  ClientPolicyError,
  DEFAULT_CLIENT_SCOPE,
  DEVICE_CODE_GRANT,
  type PolicyOptions,
} from '../../src/services/client-policy.ts';
import { checkRedirectUri } from '../../src/services/redirect-uris.ts';

/**
 * The registration policy (src/services/client-policy.ts, its redirect-URI rules in
 * src/services/redirect-uris.ts) on its own: every client, whoever
 * registers it, passes through applyClientPolicy before oidc-provider sees the metadata. Pure:
 * no server. The HTTP side (RFC 7591 error bodies) is test/clients/registration.test.ts.
 */
const selfRegistered: PolicyOptions = { operatorGranted: new Set(), byOperator: false };
const operator: PolicyOptions = { operatorGranted: new Set(['admin', 'account:export', 'account:erase']), byOperator: true };
const web = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ redirect_uris: ['https://app.example/cb'], ...extra });

/** The error applyClientPolicy refuses `metadata` with (failing the test when it accepts it). */
function refusal(metadata: Record<string, unknown>, options: PolicyOptions = selfRegistered): ClientPolicyError {
  try {
    applyClientPolicy(metadata, options);
  } catch (error) {
    expect(error, 'a ClientPolicyError').to.be.instanceOf(ClientPolicyError);
    return error as ClientPolicyError;
  }
  throw new Error(`accepted: ${JSON.stringify(metadata)}`);
}

function applied(metadata: Record<string, unknown>, options: PolicyOptions = selfRegistered): Record<string, unknown> {
  applyClientPolicy(metadata, options);
  return metadata;
}

describe('client registration policy (applyClientPolicy)', function () {
  it('fills in the defaults: a confidential web client with the code grant and the everyday scopes', function () {
    expect(applied(web())).to.deep.equal({
      redirect_uris: ['https://app.example/cb'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      scope: DEFAULT_CLIENT_SCOPE,
    });
    expect(DEFAULT_CLIENT_SCOPE.split(' ')).to.not.include.members(['admin']);
    expect(DEFAULT_CLIENT_SCOPE.split(' ')).to.not.include('account:export');
    expect(DEFAULT_CLIENT_SCOPE.split(' ')).to.not.include('account:erase');
  });

  it('application_type is web or native', function () {
    expect(refusal(web({ application_type: 'desktop' }))).to.include({ error: 'invalid_client_metadata' });
    expect(applied(web({ application_type: 'native' })).application_type).to.equal('native');
  });

  it('token endpoint authentication: none, client_secret_basic, client_secret_post or private_key_jwt; the same for introspection and revocation', function () {
    for (const method of ['client_secret_jwt', 'tls_client_auth', 'self_signed_tls_client_auth', 7]) {
      expect(refusal(web({ token_endpoint_auth_method: method })).message, String(method)).to.match(/^token_endpoint_auth_method must be/);
    }
    for (const field of ['introspection_endpoint_auth_method', 'revocation_endpoint_auth_method']) {
      expect(refusal(web({ [field]: 'client_secret_jwt' })).message).to.match(new RegExp(`^${field} must be one of`));
      expect(applied(web({ [field]: 'client_secret_post' }))[field]).to.equal('client_secret_post');
    }
  });

  it('grant types: never password or implicit; client_credentials only for a confidential client; duplicates folded', function () {
    for (const grant of ['password', 'implicit', 'urn:ietf:params:oauth:grant-type:jwt-bearer']) {
      expect(refusal(web({ grant_types: ['authorization_code', grant] })).message, grant).to.include(`"${grant}" is not allowed`);
    }
    expect(refusal({ grant_types: ['client_credentials'], token_endpoint_auth_method: 'none' }).message).to.equal(
      'grant_types: client_credentials needs a confidential client (token_endpoint_auth_method other than none)',
    );
    expect(refusal(web({ grant_types: [] })).message).to.equal('grant_types must not be empty');
    expect(refusal(web({ grant_types: 'authorization_code' })).message).to.equal('grant_types must be an array of strings');
    expect(refusal(web({ grant_types: [1] })).message).to.equal('grant_types must be an array of strings');
    expect(applied(web({ grant_types: ['authorization_code', 'refresh_token', 'authorization_code'] })).grant_types).to.deep.equal([
      'authorization_code',
      'refresh_token',
    ]);
    // A service (client_credentials) and a device (public, device grant) need no redirect URI.
    expect(applied({ grant_types: ['client_credentials'] })).to.include({ token_endpoint_auth_method: 'client_secret_basic' });
    expect(applied({ grant_types: [DEVICE_CODE_GRANT], token_endpoint_auth_method: 'none' }).response_types).to.deep.equal([]);
  });

  it('response types: only code (RFC 9700 §2.1.2), and none without the code grant', function () {
    for (const types of [['token'], ['code id_token'], ['code', 'token']]) {
      expect(refusal(web({ response_types: types })).message).to.equal('response_types: only "code" is supported (RFC 9700 §2.1.2)');
    }
    expect(applied(web({ response_types: ['code'] })).response_types).to.deep.equal(['code']);
  });

  it('redirect URIs: the code grant needs one; other grants may have none', function () {
    expect(refusal({ grant_types: ['authorization_code'] })).to.include({ error: 'invalid_redirect_uri' });
    expect(refusal({ grant_types: ['client_credentials'], redirect_uris: ['https://app.example/cb'] })).to.include({
      error: 'invalid_redirect_uri',
      message: 'redirect_uris are only for clients with the authorization_code grant',
    });
  });

  it('https metadata URLs: https only, without credentials or fragment', function () {
    for (const field of ['logo_uri', 'client_uri', 'policy_uri', 'tos_uri', 'initiate_login_uri']) {
      for (const value of ['http://app.example/x', 'https://user:pw@app.example/x', 'https://app.example/x#top', 'not a url']) {
        expect(refusal(web({ [field]: value })).message, `${field} ${value}`).to.equal(
          `${field} must be an https URL without credentials or fragment`,
        );
      }
      expect(refusal(web({ [field]: 42 })).message).to.equal(`${field} must be a string`);
      expect(applied(web({ [field]: 'https://app.example/x' }))[field]).to.equal('https://app.example/x');
    }
  });

  it('keys: private_key_jwt needs jwks or jwks_uri; a public client registers none', function () {
    expect(refusal(web({ token_endpoint_auth_method: 'private_key_jwt' })).message).to.match(/^private_key_jwt needs jwks or jwks_uri/);
    expect(applied(web({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [] } })).token_endpoint_auth_method).to.equal(
      'private_key_jwt',
    );
    expect(refusal(web({ token_endpoint_auth_method: 'none', jwks: { keys: [] } })).message).to.equal(
      'a public client (token_endpoint_auth_method none) must not register keys',
    );
    expect(refusal(web({ token_endpoint_auth_method: 'none', jwks_uri: 'https://keys.example/jwks' })).message).to.equal(
      'a public client (token_endpoint_auth_method none) must not register keys',
    );
  });

  it('R14 names: a self-registered client may not take the product’s or a first-party app’s name; an operator may', function () {
    for (const name of ['Portcullis', 'Portcullis Account', 'P0rtcullis Fans', 'Your account', 'Admin console']) {
      expect(refusal(web({ client_name: name })).message, name).to.include('is reserved');
      expect(applied(web({ client_name: name }), operator).client_name, name).to.equal(name);
    }
    expect(applied(web({ client_name: 'Account Manager Pro' })).client_name).to.equal('Account Manager Pro');
  });

  it('R13 introspect_any_token: a boolean, set by an operator only, on a confidential client only', function () {
    expect(refusal(web({ introspect_any_token: 'yes' }), operator).message).to.equal('introspect_any_token must be a boolean');
    expect(refusal(web({ introspect_any_token: true })).message).to.match(/^introspect_any_token is set by an operator only/);
    expect(refusal(web({ introspect_any_token: true, token_endpoint_auth_method: 'none' }), operator).message).to.match(
      /^introspect_any_token needs a confidential client/,
    );
    expect(applied(web({ introspect_any_token: true }), operator).introspect_any_token).to.equal(true);
    expect(applied(web({ introspect_any_token: false })).introspect_any_token).to.equal(false);
  });

  it('R4 scopes: known ones only; admin and the account scopes only when an operator granted them; duplicates folded', function () {
    expect(refusal(web({ scope: 'openid photos' })).message).to.match(/^scope: "photos" is not a scope of this server/);
    expect(refusal(web({ scope: ['openid'] })).message).to.equal('scope must be a space-separated string');
    expect(refusal(web({ scope: `openid ${'x'.repeat(1000)}` })).message).to.equal('scope must be a space-separated string');
    expect(refusal(web({ scope: 'openid admin' })).message).to.equal('scope: "admin" cannot be self-registered; ask an administrator');
    for (const scope of ['account:export', 'account:erase']) {
      expect(refusal(web({ scope: `openid ${scope}` })).message).to.equal(
        `scope: "${scope}" needs an operator's grant; ask an administrator for an initial access token that allows it`,
      );
      // An initial access token that allows it passes it on (never admin: see IAT_GRANTABLE_SCOPES).
      expect(applied(web({ scope: `openid ${scope}` }), { operatorGranted: new Set([scope]), byOperator: false }).scope).to.equal(
        `openid ${scope}`,
      );
    }
    expect(applied(web({ scope: 'openid admin' }), operator).scope).to.equal('openid admin');
    expect(applied(web({ scope: '  openid  openid email ' })).scope).to.equal('openid email');
  });
});

describe('redirect URI rules (checkRedirectUri; RFC 9700 §2.1, RFC 8252)', function () {
  const accepted: [string, boolean][] = [
    ['https://app.example/cb', false],
    ['https://app.example:8443/cb?tenant=1', false],
    ['https://app.example/cb', true],
    // Native apps: the loopback IP literals over http (any port at run time), reverse-domain schemes.
    ['http://127.0.0.1/cb', true],
    ['http://127.0.0.1:51234/cb', true],
    ['http://[::1]/cb', true],
    ['com.example.app:/oauth2redirect', true],
    ['com.example.app:/cb', true],
  ];
  for (const [uri, native] of accepted) {
    it(`accepts ${uri} for a ${native ? 'native' : 'web'} client`, function () {
      expect(() => checkRedirectUri('redirect_uris', uri, native)).to.not.throw();
    });
  }

  const refused: [string, boolean, RegExp][] = [
    ['http://app.example/cb', false, /uses http; only https is allowed/],
    ['http://127.0.0.1/cb', false, /uses http; only https is allowed/],
    ['http://localhost/cb', true, /"localhost" is not accepted/],
    ['http://10.0.0.1/cb', true, /loopback IP literals/],
    ['com.example.app:/cb', false, /web clients must use https/],
    ['myapp:/cb', true, /must be reverse domain names/],
    ['javascript:alert(1)', true, /forbidden scheme javascript:/],
    ['data:text/html,hi', true, /forbidden scheme data:/],
    ['file:///etc/passwd', true, /forbidden scheme file:/],
    ['https://app.example/cb#frag', false, /has a fragment/],
    ['https://*.app.example/cb', false, /contains a wildcard/],
    ['https://app.example/c b', false, /whitespace, control characters or a backslash/],
    ['https://app.example\\@evil.example/cb', false, /whitespace, control characters or a backslash/],
    ['https://app.example/cb\u0000', false, /whitespace, control characters or a backslash/],
    ['https://user:pw@app.example/cb', false, /must not contain user information/],
    ['/cb', false, /is not an absolute URI/],
    [`https://app.example/${'a'.repeat(2000)}`, false, /is too long/],
  ];
  for (const [uri, native, why] of refused) {
    it(`refuses ${JSON.stringify(uri.slice(0, 60))} for a ${native ? 'native' : 'web'} client`, function () {
      expect(() => checkRedirectUri('redirect_uris', uri, native))
        .to.throw(ClientPolicyError)
        .that.satisfies((error: ClientPolicyError) => error.error === 'invalid_redirect_uri' && why.test(error.message));
    });
  }

  it('names the field, and answers invalid_client_metadata for post-logout URIs and for a value that is not a string', function () {
    expect(() => checkRedirectUri('post_logout_redirect_uris', 'http://app.example/bye', false))
      .to.throw(ClientPolicyError)
      .that.satisfies(
        (error: ClientPolicyError) => error.error === 'invalid_client_metadata' && error.message.startsWith('post_logout_redirect_uris: '),
      );
    for (const value of [undefined, '', 42]) {
      expect(() => checkRedirectUri('redirect_uris', value, false))
        .to.throw(ClientPolicyError)
        .with.property('error', 'invalid_client_metadata');
    }
    // Through applyClientPolicy, for each post-logout URI too.
    expect(refusal(web({ post_logout_redirect_uris: ['https://app.example/bye', 'javascript:x'] }))).to.include({
      error: 'invalid_client_metadata',
    });
  });
});
