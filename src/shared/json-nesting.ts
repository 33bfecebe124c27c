/**
 * How deeply a JSON request body may nest, in both servers (R15). V8's JSON.parse does not
 * recurse, so it accepts any nesting the body limit allows (tens of thousands of levels), but
 * JSON.stringify does: a record nested a few thousand levels deep was parsed, then failed as it
 * was sealed (a 500), and one just under that failure was stored and broke the export, which
 * nests it a few levels deeper. Real payloads (record data, client metadata with its JWKS) need
 * a handful of levels.
 */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * Whether the JSON text opens more than `max` objects or arrays inside each other, counted in one
 * pass over the bytes before anything parses them (no recursion, no parse of a deep value). Only
 * brackets outside strings count; the text need not be valid JSON (the parser refuses that after).
 * UTF-8 is safe to scan bytewise: no byte of a multi-byte character is below 0x80.
 */
export function jsonNestingExceeds(body: Uint8Array, max: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    // eslint-disable-next-line security/detect-object-injection -- i indexes a byte array within its length
    const byte = body[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if ((byte === CLOSE_BRACE || byte === CLOSE_BRACKET) && depth > 0) depth--;
  }
  return false;
}
