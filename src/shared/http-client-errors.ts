import { maxHeaderSize, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

type ClientError = Error & { code?: string; rawPacket?: Buffer };

/** Node's own answers to requests its parser refuses (lib/_http_server.js), and ours for a long request line. */
const ANSWERS: Readonly<Record<string, string | undefined>> = {
  uriTooLong: 'HTTP/1.1 414 URI Too Long\r\nConnection: close\r\n\r\n',
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
  badRequest: 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n',
};

/** Whether the bytes the parser gave up on hold no complete request line within the header limit. */
function requestLineTooLong(error: ClientError, limit: number): boolean {
  if (error.code !== 'HPE_HEADER_OVERFLOW' || !error.rawPacket) return false;
  const endOfLine = error.rawPacket.indexOf('\r\n');
  return endOfLine === -1 || endOfLine > limit;
}

/**
 * RFC 9112 §3: a request-target longer than the server parses MUST be answered 414 (URI Too
 * Long). Node's parser counts the request line into its header limit (16 KiB) and its default
 * handler answers every overflow 431 (Request Header Fields Too Large). This handler replaces
 * that default: 414 when the request line alone is past the limit (`limit`: Node's
 * --max-http-header-size, which the servers keep), and otherwise what Node answers itself (431,
 * 413, 408 or 400, unless a response is already under way), then closes.
 */
export function answerClientErrors(server: Server, limit = maxHeaderSize): void {
  server.on('clientError', (error: ClientError, socket: Duplex & { _httpMessage?: { headersSent: boolean } | null }) => {
    // Node's own condition: no response in flight on this connection, or none of it sent yet
    // (a keep-alive connection has carried earlier answers; it is the current one that counts).
    if (socket.writable && !socket._httpMessage?.headersSent) {
      const answer = requestLineTooLong(error, limit) ? ANSWERS.uriTooLong : (ANSWERS[error.code ?? ''] ?? ANSWERS.badRequest);
      if (answer) socket.write(answer);
    }
    socket.destroy(error);
  });
}
