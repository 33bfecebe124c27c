import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { paramsOf, type SurfaceRoute } from './http-surface.ts';
import { headerOf, type SocketRequest, type SocketResponse } from './raw-socket.ts';

/**
 * Request generators and response checks for the DAST pass (R12). The generators aim at the
 * routes of http-surface.ts and mix real credentials and identifiers (FuzzPools) with hostile
 * input, so requests get past the 401 into the code behind it.
 */
export type FuzzPools = {
  /** Real values for path parameters, by name (uid, clientId, id, userId, method), or by `path name` for one route. */
  params: Readonly<Record<string, readonly string[]>>;
  /** Real bearer credentials: access tokens, initial and registration access tokens. */
  bearer: readonly string[];
  /** Real `client_id:client_secret` pairs. */
  basic: readonly string[];
  /** Real Cookie header values: interaction cookies, a signed-in account session. */
  cookies: readonly string[];
  /** Real field values: client ids, codes, refresh tokens, CSRF tokens, the user's email and password … */
  values: readonly string[];
  /**
   * Well-formed requests per route path (`/token`, `/v1/records/:id` …): query and body fields
   * that would succeed, which the generator then bends a little (one value swapped for a hostile
   * one, a field dropped, doubled or added), so requests reach the code behind validation.
   */
  recipes: Readonly<Record<string, Recipe>>;
};

export type Pairs = readonly (readonly [string, unknown])[];
export type Recipe = { query?: readonly Pairs[]; form?: readonly Pairs[]; json?: readonly Pairs[] };

export type FuzzRequest = SocketRequest & { server: 'auth' | 'api'; route: SurfaceRoute };

/** Set on Object.prototype by a successful prototype pollution through any parser. */
export const POLLUTION_CANARY = 'r12polluted';

const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'QUERY',
  'PURGE',
  'SEARCH',
  'LINK',
  'M-SEARCH',
  'get',
  'FOO',
];

/** Request fields and JSON keys the servers read, plus keys that poke at object prototypes. */
const FIELD_NAMES = [
  'client_id',
  'client_secret',
  'grant_type',
  'code',
  'redirect_uri',
  'scope',
  'resource',
  'state',
  'nonce',
  'response_type',
  'response_mode',
  'code_challenge',
  'code_challenge_method',
  'code_verifier',
  'refresh_token',
  'token',
  'token_type_hint',
  'device_code',
  'user_code',
  'id_token_hint',
  'post_logout_redirect_uri',
  'logout',
  'xsrf',
  'prompt',
  'max_age',
  'acr_values',
  'login_hint',
  'request',
  'request_uri',
  'client_assertion',
  'client_assertion_type',
  'claims',
  'ui_locales',
  'authorization_details',
  'dpop_jkt',
  'confirm',
  'abort',
  'csrf',
  'email',
  'password',
  'response',
  'name',
  'current_password',
  'new_password',
  'confirm_password',
  'sign_out_others',
  'notice',
  'reauth',
  'error',
  'limit',
  'cursor',
  'type',
  'user',
  'since',
  'until',
  'label',
  'data',
  'userId',
  'disabled',
  'roles',
  'client_name',
  'redirect_uris',
  'grant_types',
  'response_types',
  'token_endpoint_auth_method',
  'jwks',
  'jwks_uri',
  'require_mfa',
  'logo_uri',
  'registration_access_token',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  'valueOf',
];

/** Bracket keys that qs-style parsers turn into nested objects (prototype pollution probes). */
const NESTED_KEYS = [
  `__proto__[${POLLUTION_CANARY}]`,
  `constructor[prototype][${POLLUTION_CANARY}]`,
  `__proto__.${POLLUTION_CANARY}`,
  'client_id[]',
  'scope[0]',
  'email[a]',
  'password[]',
  'csrf[length]',
  'a[b][c][d][e][f][g]',
];

const NASTY_STRINGS = [
  '',
  ' ',
  '\t',
  'null',
  'undefined',
  'true',
  'false',
  '0',
  '-1',
  '-0',
  '1e309',
  'NaN',
  'Infinity',
  '0x10',
  '9007199254740993',
  '[]',
  '{}',
  '[object Object]',
  '__proto__',
  'constructor',
  '%',
  '%zz',
  '%00',
  '%u0000',
  '\u0000',
  '\uFEFF',
  '\u202E',
  '\u200B',
  '\uD800',
  '\uDFFF',
  '😀',
  'İ',
  'ı',
  'ß',
  'ﬀ',
  'Ａ',
  'ｔｏｋｅｎ',
  'é',
  'e\u0301',
  '\u00A0',
  '\r\n',
  '\n',
  '\\',
  '"',
  "'",
  '`',
  '../../etc/passwd',
  '..%2f..%2f',
  "' OR '1'='1",
  '"; DROP TABLE users; --',
  "1' AND pg_sleep(0)--",
  '$1',
  '?',
  '*',
  '%s%s%s',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '${7*7}',
  '{{7*7}}',
  '<%= 7*7 %>',
  'javascript:alert(1)',
  'http://evil.example/',
  '//evil.example',
  'https://rp.example.test/cb/../evil',
  'openid admin',
  'admin',
  'S256',
  'plain',
  'none',
  'login',
  'consent',
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
  'totp',
  'webauthn',
  'recovery',
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '2026-13-45T25:61:61Z',
  '1970-01-01T00:00:00Z',
];

/** Bytes of a string as UTF-8, percent-encoded byte by byte (never throws, unlike encodeURIComponent on a lone surrogate). */
export function percentEncode(value: string, { keep = /[A-Za-z0-9\-._~]/, lower = false } = {}): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    if (byte < 0x80 && keep.test(char)) out += char;
    else {
      const hex = byte.toString(16).padStart(2, '0');
      out += `%${lower ? hex : hex.toUpperCase()}`;
    }
  }
  return out;
}

/** A string as the latin1 "characters" of its UTF-8 bytes: how raw UTF-8 goes on the wire here. */
const utf8Bytes = (value: string): string => Buffer.from(value, 'utf8').toString('latin1');

/** The value once in `oneIn` draws, undefined otherwise (fc.option's `freq` is the other way round: 1/freq is nil). */
const oneIn = <T>(arbitrary: fc.Arbitrary<T>, n: number): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: n - 1, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary });

/**
 * A field value as it can go on the wire: UTF-8 bytes, no control characters but HTAB. Node's
 * parser answers 400 to the rest before any of our code runs; rawControls lets a few through.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point: they are removed
const fieldValue = (value: string): string => utf8Bytes(value).replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '');

const b64 = (value: string): string => Buffer.from(value, 'utf8').toString('base64');
const b64url = (value: string): string => Buffer.from(value, 'utf8').toString('base64url');

function stringValue(pools: FuzzPools): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
    { weight: 4, arbitrary: pools.values.length > 0 ? fc.constantFrom(...pools.values) : fc.constant('') },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.integer().map(String) },
    { weight: 1, arbitrary: fc.constantFrom(70, 4_100, 60_000).map((n) => 'A'.repeat(n)) },
  );
}

const fieldName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...FIELD_NAMES) },
  { weight: 2, arbitrary: fc.constantFrom(...NESTED_KEYS) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 12 }) },
);

/** Name/value pairs (duplicates allowed) for query strings and forms. */
const pairs = (pools: FuzzPools) => fc.array(fc.tuple(fieldName, stringValue(pools)), { maxLength: 8 });

/** Encodes pairs as a query string or form body, now and then carelessly (raw bytes, bad escapes, bare keys). */
const encode = (list: fc.Arbitrary<(readonly [string, string])[]>): fc.Arbitrary<string> =>
  fc.tuple(list, fc.constantFrom('strict', 'strict', 'strict', 'lower', 'raw', 'bare', 'plus')).map(([list, style]) =>
    list
      .map(([key, value]) => {
        switch (style) {
          case 'raw':
            return `${fieldValue(key)}=${fieldValue(value)}`.replace(/[\s#]/g, '+');
          case 'bare':
            return percentEncode(key);
          case 'plus':
            return `${percentEncode(key)}=${percentEncode(value).replaceAll('%20', '+')}`;
          case 'lower':
            return `${percentEncode(key, { lower: true })}=${percentEncode(value, { lower: true })}`;
          default:
            return `${percentEncode(key, { keep: /[A-Za-z0-9\-._~[\]]/ })}=${percentEncode(value)}`;
        }
      })
      .join('&'),
  );

const encodedPairs = (pools: FuzzPools): fc.Arbitrary<string> => encode(pairs(pools));

/** Marks generated JSON text that goes into a recipe object as it is. */
const RAW_JSON = Symbol('raw JSON');
const isRawJson = (value: unknown): value is { [RAW_JSON]: string } => typeof value === 'object' && value !== null && RAW_JSON in value;

/** A recipe's fields, bent: as they are, or with one value swapped, one field dropped, doubled or added. */
function bent(recipes: readonly Pairs[], hostile: fc.Arbitrary<unknown>): fc.Arbitrary<(readonly [string, unknown])[]> {
  return fc
    .tuple(
      fc.constantFrom(...recipes),
      fc.constantFrom('keep', 'keep', 'swap', 'swap', 'drop', 'double', 'add', 'rename'),
      fc.nat(),
      hostile,
      fieldName,
    )
    .map(([recipe, how, n, value, name]) => {
      const list = [...recipe];
      const i = list.length === 0 ? 0 : n % list.length;
      const picked = list[i];
      if (how === 'add' || !picked) list.push([name, value]);
      else if (how === 'swap') list[i] = [picked[0], value];
      else if (how === 'drop') list.splice(i, 1);
      else if (how === 'double') list.push([picked[0], value]);
      else if (how === 'rename') list[i] = [name, picked[1]];
      return list;
    });
}

/** A recipe value as form text: strings as they are, anything else (arrays, objects) as JSON. */
const asText = (value: unknown): string => (typeof value === 'string' ? value : value === undefined ? '' : JSON.stringify(value));

/** A recipe's query or form fields, bent and encoded. */
const recipeForm = (recipes: readonly Pairs[], pools: FuzzPools): fc.Arbitrary<string> =>
  encode(bent(recipes, stringValue(pools)).map((list) => list.map(([k, v]) => [k, asText(v)] as const)));

/** A recipe's JSON object, bent (a swapped value may be of any JSON type), keys possibly repeated. */
const recipeJson = (recipes: readonly Pairs[], pools: FuzzPools): fc.Arbitrary<string> =>
  bent(
    recipes,
    jsonText(pools).map((text) => ({ [RAW_JSON]: text })),
  ).map((list) => `{${list.map(([k, v]) => `${JSON.stringify(k)}:${isRawJson(v) ? v[RAW_JSON] : JSON.stringify(v)}`).join(',')}}`);

/** JSON values of the wrong types, deep or large; objects written by hand so keys may repeat. */
function jsonText(pools: FuzzPools): fc.Arbitrary<string> {
  const scalar = fc.oneof(
    stringValue(pools).map((s) => JSON.stringify(s)),
    fc.constantFrom('null', 'true', 'false', '0', '-0', '1e400', '-1', '1.5', '9007199254740993', '[]', '{}', '""'),
    fc.double().map((d) => (Number.isFinite(d) ? String(d) : 'null')),
  );
  const { value } = fc.letrec<{ value: string; object: string; array: string }>((tie) => ({
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('object'), tie('array')),
    object: fc
      .array(fc.tuple(fieldName, tie('value')), { maxLength: 6 })
      .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
    array: fc.array(tie('value'), { maxLength: 5 }).map((items) => `[${items.join(',')}]`),
  }));
  return fc.oneof(
    { weight: 6, arbitrary: value },
    // Malformed: cut short, trailing junk, a BOM, JavaScript-isms, very deep nesting.
    { weight: 1, arbitrary: fc.tuple(value, fc.nat()).map(([text, cut]) => text.slice(0, cut % (text.length + 1))) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{"a":1,}',
        "{'a':1}",
        '\uFEFF{}',
        '{"a":NaN}',
        '{a:1}',
        'undefined',
        '{"a":"\\ud800"}',
        '{"__proto__":{"r12polluted":1}}',
        '{"constructor":{"prototype":{"r12polluted":1}}}',
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom(100, 5_000, 100_000).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`) },
  );
}

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'application/json, text/html',
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'application/x-www-form-urlencoded; charset=nonsense',
  'multipart/form-data; boundary=----x',
  'multipart/form-data',
  'text/plain',
  'text/html',
  'application/jwt',
  'application/jose',
  'application/merge-patch+json',
  'application/problem+json',
  '*/*',
  'application/',
  ';',
  'application/json; charset="',
  'application/json;;;',
  '',
];

/** A body in one of the shapes the servers parse, or one they must refuse. */
function body(pools: FuzzPools, recipe: Recipe | undefined): fc.Arbitrary<{ text: Buffer; contentType: string | undefined }> {
  const form = 'application/x-www-form-urlencoded';
  const json = 'application/json';
  const fromRecipe = [
    ...(recipe?.form
      ? [{ weight: 12, arbitrary: fc.record({ text: recipeForm(recipe.form, pools), contentType: fc.constant<string | undefined>(form) }) }]
      : []),
    ...(recipe?.json
      ? [{ weight: 12, arbitrary: fc.record({ text: recipeJson(recipe.json, pools), contentType: fc.constant<string | undefined>(json) }) }]
      : []),
  ];
  const shape = fc.oneof(
    ...fromRecipe,
    {
      weight: 4,
      arbitrary: fc.record({
        text: encodedPairs(pools),
        contentType: fc.constant<string | undefined>('application/x-www-form-urlencoded'),
      }),
    },
    { weight: 4, arbitrary: fc.record({ text: jsonText(pools), contentType: fc.constant<string | undefined>('application/json') }) },
    {
      weight: 1,
      arbitrary: fc.record({
        text: fc.string({ unit: 'binary', maxLength: 200 }),
        contentType: fc.constantFrom<string | undefined>(...CONTENT_TYPES, undefined),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        text: fc.constantFrom(70_000, 1_100_000).map((n) => `a=${'x'.repeat(n)}`),
        contentType: fc.constantFrom<string | undefined>('application/x-www-form-urlencoded', 'application/json'),
      }),
    },
  );
  // A matching type most of the time, any listed type now and then.
  return fc.tuple(shape, oneIn(fc.constantFrom(...CONTENT_TYPES), 6)).map(([b, other]) => ({
    text: Buffer.from(b.text, 'utf8'),
    contentType: other ?? b.contentType,
  }));
}

/** A syntactically JWT-shaped string with hostile headers (alg none, jku, kid traversal …). */
const fakeJwt = fc
  .tuple(
    fc.constantFrom(
      '{"alg":"none"}',
      '{"alg":"HS256","typ":"at+jwt"}',
      '{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}',
      '{"alg":"RS256","kid":"../../etc/passwd"}',
      '{"alg":"RS256","jku":"http://evil.example/jwks"}',
      '{}',
      '[]',
      'null',
      '{"alg":"ES256","crit":["x"]}',
    ),
    fc.constantFrom('{}', '{"sub":"x","exp":1}', '{"iss":"x","aud":["a",1],"exp":"soon","scope":1}', '[]', '"s"', '{"cnf":{"jkt":1}}'),
    fc.constantFrom('', 'AAAA', 'not base64 !'),
  )
  .map(([h, p, s]) => `${b64url(h)}.${b64url(p)}.${s}`);

function authorization(pools: FuzzPools): fc.Arbitrary<string> {
  const real = (list: readonly string[]) => (list.length > 0 ? fc.constantFrom(...list) : fc.constant('x'));
  return fc.oneof(
    { weight: 8, arbitrary: real(pools.bearer).map((t) => `Bearer ${t}`) },
    { weight: 2, arbitrary: real(pools.basic).map((pair) => `Basic ${b64(pair)}`) },
    { weight: 1, arbitrary: real(pools.bearer).map((t) => `DPoP ${t}`) },
    { weight: 1, arbitrary: fakeJwt.map((t) => `Bearer ${t}`) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        'Bearer',
        'Bearer ',
        'Bearer  x',
        'bearer x',
        'BEARER x',
        'Bearer x y',
        'Bearer ==',
        'Bearer a.b',
        'Bearer a.b.c.d.e',
        'DPoP',
        'DPoP x',
        'Basic',
        'Basic ',
        'Basic ===',
        'Basic !!!',
        `Basic ${b64('nocolon')}`,
        `Basic ${b64(':')}`,
        `Basic ${b64('%zz:secret')}`,
        `Basic ${b64('%E0%A4%A:x')}`,
        `Basic ${b64('\u0000:\u0000')}`,
        `Basic ${b64('é:ü')}`,
        `Basic ${b64(`${'a'.repeat(5000)}:x`)}`,
        'Digest username="x"',
        'Negotiate YII=',
        'x',
        ',',
        'Bearer x, Basic y',
      ),
    },
    { weight: 1, arbitrary: stringValue(pools).map(fieldValue) },
  );
}

function cookie(pools: FuzzPools): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: pools.cookies.length > 0 ? fc.constantFrom(...pools.cookies) : fc.constant('a=b') },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'portcullis.session=x',
        'portcullis.session=x; portcullis.session.sig=y',
        'portcullis.interaction=%zz',
        'portcullis.session=; portcullis.session.sig=',
        `portcullis.session=${'a'.repeat(3000)}`,
        '=',
        ';;;',
        'a',
        '__proto__=1',
        'constructor=1',
        'portcullis.session=a; portcullis.session=b',
        'portcullis.account-state=x',
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.constantFrom(
            'portcullis.session',
            'portcullis.session.sig',
            'portcullis.interaction',
            'portcullis.resume',
            '__Host-portcullis.session',
          ),
          stringValue(pools),
        )
        .map(([n, v]) => `${n}=${fieldValue(v).replaceAll(';', '')}`),
    },
  );
}

/** Header lines: each optional, some repeated, values of every kind a client might send. */
function headers(pools: FuzzPools, authority: string): fc.Arbitrary<[string, string][]> {
  // Now and then a value with raw control characters, for the parser in front of everything.
  const headerValue = fc.oneof(
    { weight: 12, arbitrary: stringValue(pools).map(fieldValue) },
    { weight: 1, arbitrary: stringValue(pools).map((s) => utf8Bytes(s).replace(/[\r\n]/g, '')) },
  );
  const host = fc.oneof(
    { weight: 12, arbitrary: fc.constant(authority) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'evil.example',
        '',
        'localhost',
        '[::1]:1',
        `${authority}.`,
        'EVIL.EXAMPLE:80',
        'a'.repeat(300),
        'evil.example:99999',
        `127.0.0.1:1@evil.example`,
        'xn--e1afmkfd.example',
        utf8Bytes('éxample.com'),
        authority.toUpperCase(),
      ),
    },
  );
  const optional = <T>(arb: fc.Arbitrary<T>, n = 2) => oneIn(arb, n);
  return fc
    .record({
      host: fc.oneof(
        { weight: 20, arbitrary: host.map((h) => [h]) },
        { weight: 1, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: fc.tuple(host, host) },
      ),
      accept: optional(
        fc.constantFrom(
          'text/html',
          'application/json',
          '*/*',
          'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8',
          'application/problem+json',
          'image/png',
          'x',
          ';q=x',
        ),
      ),
      authorization: fc.oneof(
        { weight: 2, arbitrary: fc.constant([]) },
        { weight: 6, arbitrary: authorization(pools).map((a) => [a]) },
        { weight: 1, arbitrary: fc.tuple(authorization(pools), authorization(pools)) },
      ),
      cookie: optional(cookie(pools), 2),
      dpop: optional(fc.oneof(fakeJwt, headerValue), 6),
      forwarded: optional(
        fc.tuple(
          fc.constantFrom(
            'X-Forwarded-For',
            'X-Forwarded-Host',
            'X-Forwarded-Proto',
            'X-Forwarded-Port',
            'Forwarded',
            'X-Real-IP',
            'X-Original-URL',
            'X-HTTP-Method-Override',
          ),
          fc.oneof(
            fc.constantFrom(
              'evil.example',
              '1.2.3.4, 5.6.7.8',
              'unknown',
              '::1',
              'https',
              'gopher',
              'for=1.1.1.1;host=evil.example;proto=https',
              '99999',
              '/admin',
              'DELETE',
            ),
            headerValue,
          ),
        ),
        3,
      ),
      origin: optional(fc.constantFrom('null', 'https://evil.example', `http://${authority}`, '', 'file://')),
      fetchSite: optional(fc.constantFrom('same-origin', 'cross-site', 'none', 'same-site', 'x')),
      requestId: optional(headerValue, 6),
      language: optional(fc.constantFrom('*', 'en-US,en;q=0.9', 'x'.repeat(500), 'q=2', ''), 6),
      encoding: optional(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'gzip, gzip', 'x'), 8),
      expect: optional(fc.constantFrom('100-continue', 'x'), 20),
      random: fc.array(
        fc.tuple(
          fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz-_0123456789ABC'.split('')), minLength: 1, maxLength: 16 }),
          headerValue,
        ),
        { maxLength: 2 },
      ),
    })
    .map((h) => {
      const list: [string, string][] = [];
      for (const value of h.host) list.push(['Host', value]);
      if (h.accept !== undefined) list.push(['Accept', h.accept]);
      for (const value of h.authorization) list.push(['Authorization', value]);
      if (h.cookie !== undefined) list.push(['Cookie', h.cookie]);
      if (h.dpop !== undefined) list.push(['DPoP', h.dpop]);
      if (h.forwarded !== undefined) list.push(h.forwarded);
      if (h.origin !== undefined) list.push(['Origin', h.origin]);
      if (h.fetchSite !== undefined) list.push(['Sec-Fetch-Site', h.fetchSite]);
      if (h.requestId !== undefined) list.push(['X-Request-Id', h.requestId]);
      if (h.language !== undefined) list.push(['Accept-Language', h.language]);
      if (h.encoding !== undefined) list.push(['Content-Encoding', h.encoding]);
      if (h.expect !== undefined) list.push(['Expect', h.expect]);
      list.push(...h.random);
      return list;
    });
}

type PathMutation = (path: string, n: number) => string;

/** Ways of spelling a path that routers, guards and proxies may read differently. */
const PATH_MUTATIONS: Record<string, PathMutation> = {
  upper: (p) => p.toUpperCase(),
  lower: (p) => p.toLowerCase(),
  flipCase: (p, n) =>
    p.replace(/[a-z]/gi, (c, i: number) => ((i + n) % 3 === 0 ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)),
  trailingSlash: (p) => `${p}/`,
  doubleSlash: (p, n) => {
    const slashes = [...p.matchAll(/\//g)].map((m) => m.index);
    const at = slashes[n % slashes.length] ?? 0;
    return `${p.slice(0, at)}/${p.slice(at)}`;
  },
  dotSegment: (p) => `/.${p}`,
  dotDotSegment: (p) => `/x/..${p}`,
  encodedDots: (p) => `/x/%2e%2e${p}`,
  trailingDot: (p) => `${p}/.`,
  encodeOne: (p, n) => {
    const i = 1 + (n % Math.max(1, p.length - 1));
    return `${p.slice(0, i)}${percentEncode(p.charAt(i), { keep: /$^/ })}${p.slice(i + 1)}`;
  },
  encodeAll: (p) => percentEncode(p, { keep: /[/]/, lower: true }),
  doubleEncode: (p, n) => {
    const i = 1 + (n % Math.max(1, p.length - 1));
    return `${p.slice(0, i)}%25${Buffer.from(p.charAt(i)).toString('hex')}${p.slice(i + 1)}`;
  },
  encodedSlash: (p) => p.replace(/\/(?=[^/]*$)/, '%2F'),
  backslash: (p) => p.replaceAll('/', '\\'),
  matrixParam: (p) => `${p};jsessionid=x`,
  encodedNul: (p) => `${p}%00`,
  rawNul: (p) => `${p}\u0000`,
  overlongSegment: (p, n) => `${p}/${'a'.repeat([300, 5_000, 20_000][n % 3] ?? 300)}`,
  manySegments: (p) => `${'/x'.repeat(500)}${p}`,
  unicodeEncoded: (p, n) => `${p}${percentEncode(['é', '😀', '\u202E', '\uFEFF', 'İ', '\uD800'][n % 6] ?? '')}`,
  unicodeRaw: (p, n) => `${p}${utf8Bytes(['é', 'ｔ', '\u2028', '\u0085'][n % 4] ?? '')}`,
  overlongUtf8: (p) => `${p}/%C0%AE%C0%AE/%E0%80%AF`,
  invalidEscape: (p) => `${p}%zz%`,
  fullwidthSlash: (p) => p.replaceAll('/', '／').replace(/^／/, '/'),
  absoluteForm: (p) => `http://evil.example${p}`,
  fragment: (p) => `${p}#x`,
};

/** A request-target: a known route's path, its parameters filled with real or hostile values, then respelled. */
function target(route: SurfaceRoute, pools: FuzzPools): fc.Arbitrary<string> {
  const recipe = pools.recipes[route.path]?.query;
  const names = paramsOf(route.path);
  const paramValue = (name: string) =>
    fc.oneof(
      { weight: 6, arbitrary: paramPool(pools, route, name).length > 0 ? fc.constantFrom(...paramPool(pools, route, name)) : fc.uuid() },
      { weight: 3, arbitrary: stringValue(pools).map((s) => percentEncode(s)) },
      { weight: 1, arbitrary: fc.constantFrom('..', '.', '%2e%2e', '%2F', '%00', 'x'.repeat(3000), '%', '%zz') },
    );
  return fc
    .record({
      values: fc.tuple(...names.map(paramValue)),
      // Most requests keep the route's spelling, so they reach the handler behind it.
      mutations: fc.oneof(
        { weight: 3, arbitrary: fc.constant<[string, number][]>([]) },
        {
          weight: 2,
          arbitrary: fc.array(fc.tuple(fc.constantFrom(...Object.keys(PATH_MUTATIONS)), fc.nat(1000)), { minLength: 1, maxLength: 3 }),
        },
      ),
      query: recipe
        ? fc.oneof({ weight: 3, arbitrary: recipeForm(recipe, pools) }, { weight: 1, arbitrary: encodedPairs(pools) })
        : oneIn(encodedPairs(pools), 2),
      oddTarget: oneIn(fc.constantFrom('*', '', 'token', '/?', '//', '/..', '/%', 'http://evil.example', `/${'/'.repeat(100)}`), 60),
    })
    .map(({ values, mutations, query, oddTarget }) => {
      if (oddTarget !== undefined) return oddTarget;
      let path = route.path;
      names.forEach((name, i) => {
        path = path.replace(`:${name}`, values[i] ?? '');
      });
      for (const [name, n] of mutations) path = PATH_MUTATIONS[name]?.(path, n) ?? path;
      return query === undefined ? path : `${path}?${query}`;
    });
}

/** Now and then the body goes chunked or gzipped instead of plain with a Content-Length. */
const framing = fc.constantFrom('length', 'length', 'length', 'length', 'chunked', 'gzip', 'none');

/** Puts a generated body on a request: its Content-Type, and plain, chunked or gzipped framing. */
function withBody(request: FuzzRequest, b: { text: Buffer; contentType: string | undefined } | undefined, frame: string): FuzzRequest {
  // A copy: fast-check may hand the same generated value to this function again while shrinking.
  const list = [...request.headers];
  const sendsBody = b !== undefined && (request.method !== 'GET' && request.method !== 'HEAD' ? true : frame === 'length');
  if (!sendsBody || frame === 'none') return { ...request, headers: list };
  if (b.contentType !== undefined) list.push(['Content-Type', b.contentType]);
  if (frame === 'gzip' && !list.some(([n]) => n === 'Content-Encoding')) {
    list.push(['Content-Encoding', 'gzip']);
    return { ...request, headers: list, body: gzipSync(b.text) };
  }
  if (frame === 'chunked') {
    list.push(['Transfer-Encoding', 'chunked']);
    const half = Math.floor(b.text.length / 2);
    const chunks = [b.text.subarray(0, half), b.text.subarray(half)].filter((c) => c.length > 0);
    const framed = Buffer.concat([
      ...chunks.flatMap((c) => [Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]),
      Buffer.from('0\r\n\r\n'),
    ]);
    return { ...request, headers: list, body: framed };
  }
  return { ...request, headers: list, body: b.text };
}

/** Hostile in every part at once: method, spelling of the path, headers, body and framing. */
function wildRequest(route: SurfaceRoute, p: FuzzPools, authority: string): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      method: fc.oneof({ weight: 7, arbitrary: fc.constantFrom(...route.methods) }, { weight: 3, arbitrary: fc.constantFrom(...METHODS) }),
      target: target(route, p),
      headers: headers(p, authority),
      body:
        (p.recipes[route.path]?.form ?? p.recipes[route.path]?.json)
          ? fc.oneof({ weight: 1, arbitrary: fc.constant(undefined) }, { weight: 4, arbitrary: body(p, p.recipes[route.path]) })
          : oneIn(body(p, undefined), 2),
      framing,
    })
    .map(({ method, target: requestTarget, headers: list, body: b, framing: frame }) =>
      withBody({ server: route.server, route, method, target: requestTarget, headers: list }, b, frame),
    );
}

/**
 * Nearly right: the route's own method and spelling, the real Host, real credentials, a same-
 * origin browser's headers, and the route's recipe bent in one place. These get past parsing,
 * CSRF and token checks, so the hostile value meets the code that uses it.
 */
function nearlyRightRequest(route: SurfaceRoute, p: FuzzPools, authority: string): fc.Arbitrary<FuzzRequest> {
  const recipe = p.recipes[route.path];
  const real = (list: readonly string[]) => (list.length > 0 ? fc.constantFrom(...list) : fc.constant(''));
  const names = paramsOf(route.path);
  return fc
    .record({
      method: fc.constantFrom(...route.methods),
      values: fc.tuple(
        ...names.map((name) =>
          oneOf(
            real(paramPool(p, route, name)),
            stringValue(p).map((v) => percentEncode(v)),
            5,
          ),
        ),
      ),
      query: recipe?.query ? recipeForm(recipe.query, p) : oneIn(encodedPairs(p), 3),
      // The API takes bearer tokens; the auth server's pages take cookies, its endpoints client credentials.
      credential: fc.oneof(
        { weight: route.server === 'api' ? 8 : 2, arbitrary: real(p.bearer).map((t) => ['Authorization', `Bearer ${t}`] as const) },
        {
          weight: route.server === 'api' ? 1 : 3,
          arbitrary: real(p.basic).map((pair) => ['Authorization', `Basic ${b64(pair)}`] as const),
        },
        { weight: route.server === 'api' ? 1 : 4, arbitrary: real(p.cookies).map((c) => ['Cookie', c] as const) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      accept: fc.constantFrom('text/html,application/xhtml+xml;q=0.9,*/*;q=0.8', 'application/json', '*/*'),
      body: (recipe?.form ?? recipe?.json) ? body(p, recipe) : oneIn(body(p, undefined), 3),
    })
    .map(({ method, values, query, credential, accept, body: b }) => {
      let path = route.path;
      names.forEach((name, i) => {
        path = path.replace(`:${name}`, values[i] ?? '');
      });
      const headersList: [string, string][] = [
        ['Host', authority],
        ['Accept', accept],
      ];
      // What a browser adds to a same-origin form post; an API client sends no Origin.
      if (BROWSER_FORMS.test(route.path)) headersList.push(['Origin', `http://${authority}`], ['Sec-Fetch-Site', 'same-origin']);
      if (credential) headersList.push([credential[0], credential[1]]);
      return withBody(
        { server: route.server, route, method, target: query ? `${path}?${query}` : path, headers: headersList },
        b,
        'length',
      );
    });
}

/** Pages whose forms a browser posts (our pages, the device code page, logout confirmation). */
const BROWSER_FORMS = /^\/(?:interaction|account|device$|session\/end\/confirm)/;

/** Real values for a path parameter: those listed for this route's path first, then by name. */
const paramPool = (p: FuzzPools, route: SurfaceRoute, name: string): readonly string[] =>
  p.params[`${route.path} ${name}`] ?? p.params[name] ?? [];

/** `likely` most of the time, `other` once in `n` draws. */
const oneOf = <T>(likely: fc.Arbitrary<T>, other: fc.Arbitrary<T>, n: number): fc.Arbitrary<T> =>
  fc.oneof({ weight: n - 1, arbitrary: likely }, { weight: 1, arbitrary: other });

/** One whole request against one of the routes: half of them nearly right, half hostile throughout. */
export function fuzzRequest(
  routes: readonly SurfaceRoute[],
  pools: Record<'auth' | 'api', FuzzPools>,
  authorities: Record<'auth' | 'api', string>,
): fc.Arbitrary<FuzzRequest> {
  return fc
    .constantFrom(...routes)
    .chain((route) =>
      fc.oneof(
        wildRequest(route, pools[route.server], authorities[route.server]),
        nearlyRightRequest(route, pools[route.server], authorities[route.server]),
      ),
    );
}

/** Internal detail a response must never carry: stack frames, source paths, driver and database messages. */
export function leakPatterns(repoRoot: string): RegExp[] {
  const escaped = repoRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\/$/, '');
  return [
    /\n\s+at [^\n]+:\d+:\d+/, // a stack frame
    /\bat (?:async )?[\w$.<>[\] ]+ \((?:file:|node:|\/)/,
    new RegExp(escaped),
    /node_modules\//,
    /node:internal/,
    /\bsrc\/[\w/-]+\.ts\b/,
    /\b[A-Z][A-Za-z]*Error: /, // TypeError: …, ReplyError: …
    /(?:^|[\s>"'])Error: /,
    /syntax error at or near/i,
    /invalid input syntax for/i,
    /violates (?:not-null|foreign key|unique|check) constraint/i,
    /relation \\?"[^"\\]+\\?" does not exist/i,
    /column \\?"[^"\\]+\\?" (?:does not exist|of relation)/i,
    /duplicate key value/i,
    /\bknex\b/i,
    /pg-protocol|\bpglite\b/i,
    // Quotes may come escaped (inside JSON).
    /\b(?:insert into|delete from|update) \\?"\w+\\?"/i,
    /\bselect\b.{0,200}\bfrom \\?"\w+\\?"/i,
    /WRONGTYPE|ERR wrong number of arguments|\bioredis\b|ReplyError/,
    /\bE(?:CONNREFUSED|CONNRESET|TIMEDOUT|PIPE|NOTFOUND)\b/,
    /Cannot read properties of/,
    /is not a function\b/,
    /Maximum call stack size exceeded/,
  ];
}

const ALLOWED_TYPES = [
  'application/json',
  'application/problem+json',
  'application/jwk-set+json',
  'text/html',
  'text/plain',
  'text/css',
  'text/javascript',
];

/** Everything wrong with one response to one fuzzed request (empty when it is fine). */
export function judge(request: FuzzRequest, response: SocketResponse, leaks: readonly RegExp[]): string[] {
  const problems = [...response.problems];
  if (response.trailing.length > 0) problems.push(`${response.trailing.length} bytes after the response`);
  if (response.status >= 500) problems.push(`status ${response.status}`);
  if (Object.prototype.hasOwnProperty.call(Object.prototype, POLLUTION_CANARY)) problems.push('Object.prototype polluted');
  const contentType = (headerOf(response, 'content-type') ?? '').toLowerCase();
  const mediaType = contentType.split(';')[0]?.trim() ?? '';
  if (response.body.length > 0) {
    if (!ALLOWED_TYPES.includes(mediaType)) problems.push(`body with content type ${JSON.stringify(contentType)}`);
    if (mediaType.endsWith('json')) {
      try {
        JSON.parse(response.body.toString('utf8'));
      } catch {
        problems.push('JSON content type but the body is not JSON');
      }
    }
    if (
      mediaType === 'text/html' &&
      !/^\s*<!doctype html|<html/i.test(response.body.toString('utf8')) &&
      !(response.status >= 300 && response.status < 400)
    )
      problems.push('HTML content type but not an HTML document');
    if (mediaType.startsWith('text/') && !/charset=utf-8/.test(contentType)) problems.push(`text without charset=utf-8: ${contentType}`);
    if (headerOf(response, 'x-content-type-options') !== 'nosniff') problems.push('a body without X-Content-Type-Options: nosniff');
  }
  // Scripts and style sheets are served files, not messages: they are not searched for leaks.
  if (mediaType !== 'text/javascript' && mediaType !== 'text/css') {
    const sent = [request.target, ...request.headers.flat(), request.body?.toString('latin1') ?? ''].join('\n');
    const sentDecoded = `${sent}\n${safeDecode(sent)}\n${Buffer.from(sent, 'latin1').toString('utf8')}`;
    const text = [response.body.toString('utf8'), ...response.headers.map(([n, v]) => `${n}: ${v}`)].join('\n');
    for (const pattern of leaks) {
      const found = pattern.exec(text);
      // Our own input echoed back (an error description quoting a parameter) is not a leak.
      if (found && !sentDecoded.includes(found[0].trim()))
        problems.push(`leak ${String(pattern)}: ${JSON.stringify(text.slice(Math.max(0, found.index - 80), found.index + 120))}`);
    }
  }
  return problems;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return value;
  }
}

/** A request as a reader can replay it: the method, target and headers, and the start of the body. */
export function describeRequest(request: FuzzRequest): string {
  const body = request.body
    ? `\n${JSON.stringify(request.body.subarray(0, 300).toString('latin1'))}${request.body.length > 300 ? ` … (${request.body.length} bytes)` : ''}`
    : '';
  const head = `${request.method} ${JSON.stringify(request.target.length > 300 ? `${request.target.slice(0, 300)}… (${request.target.length})` : request.target)} → ${request.server}`;
  return `${head}\n${request.headers.map(([n, v]) => `${n}: ${JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v)}`).join('\n')}${body}`;
}
