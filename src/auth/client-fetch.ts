/**
 * What oidc-provider may read from a client's own URLs (R15): a private_key_jwt client's
 * `jwks_uri` and a `sector_identifier_uri` (the provider's defaults: no size limit), and the
 * client_id metadata documents it may fetch (its default, 5 KiB). A JWKS with a few keys and
 * certificate chains, or a list of redirect URIs, fits well within 64 KiB.
 */
export const CLIENT_FETCH_BODY_LIMITS = {
  jwks_uri: 64 * 1024,
  sector_identifier_uri: 64 * 1024,
  'client_id metadata document': 5 * 1024,
} as const;

/** The largest body any such fetch reads, whatever the purpose: a bound even for a purpose the provider adds later. */
export const CLIENT_FETCH_MAX_BYTES = 64 * 1024;

/** The whole exchange, body included; the provider sets the same 2.5 s on its own signal. */
export const CLIENT_FETCH_TIMEOUT_MS = 2_500;

const tooLarge = (): Error => new Error(`response too large (over ${CLIENT_FETCH_MAX_BYTES} bytes)`);

/**
 * oidc-provider's `fetch` (its configuration option): the platform fetch, with the provider's own
 * options (its SSRF-refusing dispatcher, headers and signal) kept, plus two bounds of our own that
 * hold whatever the provider's defaults become: a deadline over headers and body together, and a
 * body cut at CLIENT_FETCH_MAX_BYTES — refused up front on a larger Content-Length, and otherwise
 * counted as it streams, the connection dropped as soon as it goes over.
 */
export async function clientFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const deadline = AbortSignal.timeout(CLIENT_FETCH_TIMEOUT_MS);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  const response = await fetch(input, { ...init, signal });
  if (!response.body) return response;
  if (Number(response.headers.get('content-length') ?? 0) > CLIENT_FETCH_MAX_BYTES) {
    await response.body.cancel();
    throw tooLarge();
  }
  let received = 0;
  // An error in the transform cancels the source stream, which closes the connection.
  const bounded = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        received += chunk.byteLength;
        if (received > CLIENT_FETCH_MAX_BYTES) controller.error(tooLarge());
        else controller.enqueue(chunk);
      },
    }),
  );
  return new Response(bounded, { status: response.status, statusText: response.statusText, headers: response.headers });
}
