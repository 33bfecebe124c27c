import { request, type IncomingHttpHeaders } from 'node:http';

export type RawReply = { status: number; headers: IncomingHttpHeaders; body: string };

/**
 * One HTTP/1.1 request with full control over what fetch() normalises away: the Host header
 * (sent exactly as given, or the origin's host when absent), the request target (an
 * absolute-form `http://other/path` or a path with any spelling), the method and the source
 * address on loopback (the whole 127/8 is local on Linux); `chunked` sends the body without
 * Content-Length.
 */
export function rawRequest(
  origin: string,
  options: { method?: string; target: string; headers?: Record<string, string>; body?: string; from?: string; chunked?: boolean },
): Promise<RawReply> {
  const url = new URL(origin);
  const body = options.body;
  const headers: Record<string, string> = {
    Host: url.host,
    ...(body === undefined || options.chunked ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? 'GET',
        path: options.target,
        headers,
        setHost: false,
        localAddress: options.from ?? '127.0.0.1',
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    if (options.chunked && body !== undefined) {
      // Without Content-Length Node sends Transfer-Encoding: chunked; two chunks, to be sure.
      req.write(body.slice(0, Math.floor(body.length / 2)));
      req.end(body.slice(Math.floor(body.length / 2)));
    } else req.end(body);
  });
}

export const formBody = (form: Record<string, string>): string => new URLSearchParams(form).toString();
