import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/**
 * A software WebAuthn authenticator for request-sequence tests without a browser: one ES256
 * key pair, "none" attestation, a signature counter the test can set, and assertions signed
 * exactly as W3C WebAuthn §6.3.3 says (authenticatorData ‖ SHA-256(clientDataJSON)). The
 * browser suites use Chromium's virtual authenticator instead; this one lets an HTTP test
 * register a passkey, sign in with it, and forge the cases a real authenticator never makes
 * (a regressed counter, a bad signature) one at a time.
 */
export type SoftAuthenticator = {
  credentialId: string;
  register(options: PublicKeyCredentialCreationOptionsJSON): RegistrationResponseJSON;
  assert(
    options: PublicKeyCredentialRequestOptionsJSON,
    change?: { counter?: number; userVerified?: boolean; badSignature?: boolean },
  ): AuthenticationResponseJSON;
};

const b64url = (data: Uint8Array | Buffer | string): string => Buffer.from(data).toString('base64url');

export function softAuthenticator({ origin }: { origin: string }): SoftAuthenticator {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rawId = randomBytes(16);
  const credentialId = b64url(rawId);
  let userHandle: string | undefined;
  let counter = 0;

  const rpIdHash = (rpId: string) => createHash('sha256').update(rpId).digest();
  const flags = (userVerified: boolean, attested = false) => 0x01 | (userVerified ? 0x04 : 0) | (attested ? 0x40 : 0);
  const counterBytes = (value: number) => {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(value);
    return out;
  };
  const clientData = (type: string, challenge: string) => Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));

  function coseKey(key: KeyObject): Uint8Array {
    const jwk = key.export({ format: 'jwk' });
    // COSE_Key for EC2 / P-256 / ES256 (RFC 9053): kty 2, alg -7, crv 1, x, y.
    return isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'))],
        [-3, new Uint8Array(Buffer.from(jwk.y ?? '', 'base64url'))],
      ]),
    );
  }

  return {
    credentialId,

    register(options) {
      userHandle = options.user.id;
      const rpId = options.rp.id ?? new URL(origin).hostname;
      const length = Buffer.alloc(2);
      length.writeUInt16BE(rawId.length);
      const authData = Buffer.concat([
        rpIdHash(rpId),
        Buffer.from([flags(true, true)]),
        counterBytes(counter),
        Buffer.alloc(16),
        length,
        rawId,
        coseKey(publicKey),
      ]);
      const attestationObject = isoCBOR.encode(
        new Map<string, string | Uint8Array | Map<string, string>>([
          ['fmt', 'none'],
          ['attStmt', new Map<string, string>()],
          ['authData', new Uint8Array(authData)],
        ]),
      );
      return {
        id: credentialId,
        rawId: credentialId,
        type: 'public-key',
        response: {
          clientDataJSON: b64url(clientData('webauthn.create', options.challenge)),
          attestationObject: b64url(attestationObject),
          transports: ['internal'],
        },
        clientExtensionResults: {},
        authenticatorAttachment: 'platform',
      };
    },

    assert(options, change = {}) {
      counter = change.counter ?? counter + 1;
      const rpId = options.rpId ?? new URL(origin).hostname;
      const authData = Buffer.concat([rpIdHash(rpId), Buffer.from([flags(change.userVerified ?? true)]), counterBytes(counter)]);
      const data = clientData('webauthn.get', options.challenge);
      let signature = sign('sha256', Buffer.concat([authData, createHash('sha256').update(data).digest()]), privateKey);
      // A signature over other bytes: well-formed DER, but not this assertion's.
      if (change.badSignature) signature = sign('sha256', randomBytes(32), privateKey);
      return {
        id: credentialId,
        rawId: credentialId,
        type: 'public-key',
        response: {
          clientDataJSON: b64url(data),
          authenticatorData: b64url(authData),
          signature: b64url(signature),
          ...(userHandle ? { userHandle } : {}),
        },
        clientExtensionResults: {},
        authenticatorAttachment: 'platform',
      };
    },
  };
}

/** The WebAuthn options a page carries in its data-options attribute (HTML-escaped JSON). */
function pageOptions(html: string): unknown {
  const raw = /data-options="([^"]*)"/.exec(html)?.[1];
  if (!raw) throw new Error('no WebAuthn options on this page');
  return JSON.parse(
    raw.replaceAll('&quot;', '"').replaceAll('&#39;', "'").replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&'),
  );
}

/** Registration options of an enrolment page. */
export const creationOptionsOf = (html: string): PublicKeyCredentialCreationOptionsJSON =>
  pageOptions(html) as PublicKeyCredentialCreationOptionsJSON;

/** Authentication options of a second-factor page. */
export const requestOptionsOf = (html: string): PublicKeyCredentialRequestOptionsJSON =>
  pageOptions(html) as PublicKeyCredentialRequestOptionsJSON;
