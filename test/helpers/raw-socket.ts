import { connect } from 'node:net';

/**
 * HTTP/1.1 over a bare socket, for requests fetch() and node:http refuse to send (a Host of our
 * choosing, raw bytes in the target, duplicate or malformed headers, two requests in one write)
 * and a strict reading of what comes back: every response is parsed by hand and what does not
 * frame as valid HTTP/1.1 is reported, instead of being smoothed over by a forgiving client.
 */
export type SocketRequest = {
  method: string;
  /** The request-target exactly as sent (latin1 bytes). */
  target: string;
  /** In order, duplicates allowed; nothing is added but Content-Length (when a body is given and none is listed) and Connection: close. */
  headers: readonly (readonly [string, string])[];
  body?: Buffer;
};

export type SocketResponse = {
  status: number;
  headers: [string, string][];
  body: Buffer;
  /** Framing and syntax problems found while parsing; empty for a well-formed response. */
  problems: string[];
  /** Bytes after the first response (a second response means a request was smuggled through). */
  trailing: Buffer;
};

export const headerOf = (response: SocketResponse, name: string): string | undefined =>
  response.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];

/** The request's bytes: request line, headers, blank line, body. */
export function serialize(request: SocketRequest, { close = true } = {}): Buffer {
  const headers = [...request.headers];
  const named = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  if (request.body && !named('content-length') && !named('transfer-encoding'))
    headers.push(['Content-Length', String(request.body.length)]);
  if (close && !named('connection')) headers.push(['Connection', 'close']);
  const head = `${request.method} ${request.target} HTTP/1.1\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), request.body ?? Buffer.alloc(0)]);
}

/** Writes the bytes, reads until the server closes, and parses the first response. */
export async function socketExchange(
  port: number,
  bytes: Buffer,
  { timeoutMs = 10_000, headRequest = false } = {},
): Promise<SocketResponse> {
  const received = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response within ${timeoutMs} ms (${Buffer.concat(chunks).length} bytes received)`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A server may reset after answering a request it refused to read to the end.
      if (error.code === 'ECONNRESET' && chunks.length > 0) return;
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.write(bytes);
  });
  // Interim responses (100 Continue) come first; the final one is what counts.
  let rest = received;
  while (
    /^HTTP\/1\.1 1\d\d /.test(rest.subarray(0, 13).toString('latin1')) &&
    !rest.subarray(0, 13).toString('latin1').startsWith('HTTP/1.1 101')
  ) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    rest = rest.subarray(end + 4);
  }
  return parseResponse(rest, { headRequest });
}

export const socketRequest = (port: number, request: SocketRequest, options: { timeoutMs?: number } = {}): Promise<SocketResponse> =>
  socketExchange(port, serialize(request), { ...options, headRequest: request.method === 'HEAD' });

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses one HTTP/1.1 response strictly (RFC 9112): status line, field lines, then the body's framing. */
export function parseResponse(raw: Buffer, { headRequest = false } = {}): SocketResponse {
  const problems: string[] = [];
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1)
    return {
      status: 0,
      headers: [],
      body: Buffer.alloc(0),
      problems: [`no header section end in ${raw.length} bytes: ${JSON.stringify(raw.subarray(0, 200).toString('latin1'))}`],
      trailing: Buffer.alloc(0),
    };
  const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const statusMatch = /^HTTP\/1\.1 ([1-5]\d\d) ?([^\r\n]*)$/.exec(statusLine);
  if (!statusMatch) problems.push(`bad status line ${JSON.stringify(statusLine)}`);
  const status = Number(statusMatch?.[1] ?? 0);
  const headers: [string, string][] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) problems.push(`bad field line ${JSON.stringify(line)}`);
    const value = line.slice(colon + 1).trim();
    // No control characters (CR, LF, NUL … ; HTAB is allowed) may reach a field value.
    // eslint-disable-next-line no-control-regex -- matching control characters is the point: none may be in a field value
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) problems.push(`control character in ${name}`);
    headers.push([name, value]);
  }
  const values = (name: string) => headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  let rest: Buffer = raw.subarray(end + 4);
  let body: Buffer = Buffer.alloc(0);
  const lengths = values('content-length');
  const encodings = values('transfer-encoding');
  if (lengths.length > 1) problems.push('more than one Content-Length');
  if (lengths.length > 0 && encodings.length > 0) problems.push('both Content-Length and Transfer-Encoding');
  const noBody = headRequest || status === 204 || status === 304 || (status >= 100 && status < 200);
  if (noBody) {
    // A HEAD response may announce the length a GET would have; nothing follows it.
  } else if (encodings.length > 0) {
    if (encodings.join(',').toLowerCase().trim() !== 'chunked') problems.push(`unexpected Transfer-Encoding ${encodings.join(',')}`);
    const chunks: Buffer[] = [];
    for (;;) {
      const lineEnd = rest.indexOf('\r\n');
      const size = lineEnd === -1 ? NaN : Number.parseInt(rest.subarray(0, lineEnd).toString('latin1'), 16);
      if (!Number.isInteger(size) || size < 0 || rest.length < lineEnd + 2 + size + 2) {
        problems.push('truncated or malformed chunked body');
        break;
      }
      if (size === 0) {
        const trailerEnd = rest.indexOf('\r\n\r\n', lineEnd);
        rest = trailerEnd === -1 ? rest.subarray(lineEnd + 2) : rest.subarray(trailerEnd + 4);
        break;
      }
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      if (rest.subarray(lineEnd + 2 + size, lineEnd + 4 + size).toString('latin1') !== '\r\n') problems.push('chunk not followed by CRLF');
      rest = rest.subarray(lineEnd + 4 + size);
    }
    body = Buffer.concat(chunks);
  } else if (lengths.length > 0) {
    const length = Number(lengths[0]);
    if (!/^\d+$/.test(lengths[0] ?? '') || rest.length < length)
      problems.push(`Content-Length ${lengths[0] ?? ''} but ${rest.length} bytes follow`);
    body = rest.subarray(0, length);
    rest = rest.subarray(length);
  } else {
    // Delimited by the connection's close (allowed, if unusual, for a response).
    body = rest;
    rest = Buffer.alloc(0);
  }
  return { status, headers, body, problems, trailing: rest };
}
