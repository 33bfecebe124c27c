import type { IncomingMessage } from 'node:http';

/** oidc-provider's own limit for the bodies it reads (lib/shared/selective_body.js). */
export const PROVIDER_BODY_LIMIT = 56 * 1024;

/** Resolves at the request's next 'readable', 'close' or 'error', whichever comes first. */
function nextEvent(req: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('readable', done);
      req.off('close', done);
      req.off('error', done);
      resolve();
    };
    req.on('readable', done);
    req.on('close', done);
    req.on('error', done);
  });
}

/**
 * Reads a request body (at most `limit` bytes) ahead of the handler that owns it, and puts the
 * bytes back into the request stream (R13): oidc-provider then reads its body from the stream as
 * if nobody had, with its own length and charset handling. (A drained stream made it fall back
 * to req.body and print "already parsed request body detected" to stderr.)
 *
 * The body is read in paused mode with read(); once the whole message has arrived (`complete`),
 * the bytes are unshifted in the same tick as the last read(), before the stream can emit 'end'
 * (Node refuses unshift() only after 'end'). A body without Content-Length (chunked) is read too,
 * so it cannot slip past a reader that only looks at declared lengths. 'skipped': no body, or
 * already ended. 'mismatch': not as long as declared, or the connection went away. 'too-large':
 * over the limit (the stream is left part-read; refuse the request).
 */
export async function readBodyAhead(req: IncomingMessage, limit: number): Promise<Buffer | 'skipped' | 'mismatch' | 'too-large'> {
  const declared = req.headers['content-length'];
  const length = declared === undefined ? undefined : Number(declared);
  const chunked = declared === undefined && req.headers['transfer-encoding'] !== undefined;
  if (!req.readable || (length === undefined && !chunked) || length === 0) return 'skipped';
  if (length !== undefined && (!Number.isInteger(length) || length < 0)) return 'mismatch';
  if (length !== undefined && length > limit) return 'too-large';
  const chunks: Buffer[] = [];
  let received = 0;
  for (;;) {
    let chunk: Buffer | null;
    while ((chunk = req.read() as Buffer | null) !== null) {
      received += chunk.length;
      if (received > limit) return 'too-large';
      chunks.push(chunk);
    }
    // Every byte of a complete message was pushed before `complete` was set.
    if (req.complete) break;
    if (req.destroyed) return 'mismatch';
    await nextEvent(req);
  }
  if (length !== undefined && received !== length) return 'mismatch';
  const body = Buffer.concat(chunks, received);
  putBack(req, body);
  return body;
}

/** Unshifts bytes into a stream that has not emitted 'end' (synchronously, see readBodyAhead). */
function putBack(req: IncomingMessage, body: Buffer): void {
  if (body.length > 0) req.unshift(body);
}

/**
 * Replaces a body read ahead with another (the RFC 7592 secret echo rewrites it): the bytes put
 * back are taken out again and the new ones put in their place, all in one tick, and a declared
 * Content-Length follows the new length so the provider's length check holds.
 */
export function replaceBodyAhead(req: IncomingMessage, body: Buffer): void {
  while (req.read() !== null);
  if (req.headers['content-length'] !== undefined) req.headers['content-length'] = String(body.length);
  putBack(req, body);
}
