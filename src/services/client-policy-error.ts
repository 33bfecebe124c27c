/** A client's metadata refused by the registration policy, with the RFC 7591 error code to answer. */
export class ClientPolicyError extends Error {
  readonly error: 'invalid_redirect_uri' | 'invalid_client_metadata';
  constructor(error: 'invalid_redirect_uri' | 'invalid_client_metadata', description: string) {
    super(description);
    this.name = 'ClientPolicyError';
    this.error = error;
  }
}
