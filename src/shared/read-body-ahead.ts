import type { IncomingMessage } from 'node:http';

/** oidc-provider's own limit for the bodies it reads (lib/shared/selective_body.js). */
export const PROVIDER_BODY_LIMIT = 56 * 1024;

/**
 * Reads a request body (at most `limit` bytes) ahead of the handler that owns it; the caller
 * leaves the bytes on req.body, which oidc-provider parses instead of the drained stream.
 * A body without Content-Length (chunked) is read too, so it cannot slip past a reader that only
 * looks at declared lengths. 'skipped': no body, or already read. 'mismatch': not as long as
 * declared. 'too-large': over the limit (the stream is left part-read; refuse the request).
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
  for await (const chunk of req.iterator({ destroyOnReturn: false })) {
    const buffer = chunk as Buffer;
    received += buffer.length;
    if (received > limit) return 'too-large';
    chunks.push(buffer);
    if (length !== undefined && received > length) break;
  }
  return length === undefined || received === length ? Buffer.concat(chunks) : 'mismatch';
}

/** Hands a body read ahead to oidc-provider (selective_body.js falls back to req.body). */
export function handOver(req: IncomingMessage, body: Buffer): void {
  (req as IncomingMessage & { body?: Buffer }).body = body;
}
