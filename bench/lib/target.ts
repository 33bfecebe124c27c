/** One HTTP request shape that wrk (Lua) and the Node drivers both send, with its acceptance check. */
export type Target = {
  origin: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Statuses that count as success (e.g. 400 for a device poll while pending). */
  expect: number[];
  /** One of these substrings must be in the body. */
  match?: string[];
};

export function basicAuth(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

export function form(fields: Record<string, string>): { headers: Record<string, string>; body: string } {
  return { headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() };
}

export function accepts(target: Pick<Target, 'expect' | 'match'>, status: number, body: string): boolean {
  if (!target.expect.includes(status)) return false;
  return !target.match || target.match.some((m) => body.includes(m));
}
