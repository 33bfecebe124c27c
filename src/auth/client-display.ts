import type { Client } from 'oidc-provider';
import type Provider from 'oidc-provider';

/**
 * How our pages name and show a client (sign-in, second factor, consent, device confirmation,
 * the account page's connected apps): one lookup and one set of display rules for all of them.
 */
export type ClientDisplay = {
  /** The registered client_name, else the client id (a client without a name, or one that is gone). */
  name: string;
  /** The logo, when the client registered an https one (httpsLogo). */
  logoUri: string | undefined;
  /** Read with the same lookup for the sign-in's second-factor policy: every sign-in to this client passes a second factor. */
  requireMfa: boolean;
};

/** The name a page shows for `client`: its client_name, else `fallback` (its id, usually). */
export function clientName<F extends string | undefined>(client: Pick<Client, 'clientName'> | undefined, fallback: F): string | F {
  return client?.clientName ?? fallback;
}

/** Only https logos are shown: an http image would leak the visit and could be swapped in transit. */
export function httpsLogo(client: Client): string | undefined {
  const logo = (client.metadata() as { logo_uri?: unknown }).logo_uri;
  if (typeof logo !== 'string') return undefined;
  try {
    return new URL(logo).protocol === 'https:' ? logo : undefined;
  } catch {
    return undefined;
  }
}

/** A client as a page shows it, from the client itself (the provider hands the device pages one). */
export function displayOf(client: Client): ClientDisplay {
  return { name: clientName(client, client.clientId), logoUri: httpsLogo(client), requireMfa: client.metadata().require_mfa === true };
}

/** A client by id as a page shows it; an unknown id is shown as itself, with nothing required. */
export async function findClientDisplay(provider: Provider, clientId: string): Promise<ClientDisplay> {
  const client = await provider.Client.find(clientId);
  return client ? displayOf(client) : { name: clientId, logoUri: undefined, requireMfa: false };
}
