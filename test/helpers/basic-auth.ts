/**
 * The Authorization header for client_secret_basic: RFC 6749 section 2.3.1 has the client id and
 * secret form-encoded before they are joined with ':' and base64-encoded, so an id or secret
 * holding ':' or '%' still reaches the server intact.
 */
export function basicAuth(id: string, secret = ''): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}
