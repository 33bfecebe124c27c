/**
 * Client names a client may not give itself (R14): the product's and its first-party apps'. The
 * consent and device pages show a client's name, so a self-registered client named "Portcullis
 * Account" would pass for one of ours. Names are compared as skeletons (after UTS #39's idea): the
 * same text after compatibility normalisation (NFKC: fullwidth, ligatures), without accents,
 * case, spaces, punctuation or invisible characters, and with letters that look alike (Cyrillic
 * and Greek look-alikes of Latin letters, 0/o, 1/I/l, rn/m, vv/w) folded together. Pure.
 */

/** The product's name: no self-registered client name may contain it. */
const PRODUCT = 'Portcullis';

/**
 * The names of our first-party apps and of what users take for them: a self-registered client
 * name may not be one of these (it may contain the words: "Account Manager Pro" is fine).
 */
const FIRST_PARTY = [
  'Your account', // the account page's client (src/auth/account-client.ts)
  'Account',
  'My account',
  'Account console',
  'Admin',
  'Admin console',
  'Administration',
  'Administrator',
];

/**
 * Look-alikes of Latin letters (Cyrillic, Greek, other Latin) and digits, each folded to the
 * Latin letter below it: LOOK_ALIKES[i] looks like LATIN[i].
 */
const LOOK_ALIKES = 'авеёкмнорстухѕіїјԁһӏԛԝɡıłſαβεηικνορτυχω01|';
const LATIN = 'abeekmhopctyxsiijdhlqwgilsabenikvoptuxwoll';
const FOLD = new Map(Array.from(LOOK_ALIKES).map((c, i) => [c, LATIN.charAt(i)]));

/** A name's skeleton: what it looks like, whatever characters spell it. */
export function nameSkeleton(name: string): string {
  const folded = Array.from(name.normalize('NFKC').normalize('NFD').toLowerCase())
    .map((c) => FOLD.get(c) ?? c)
    .join('')
    // Accents (combining marks) and everything but letters and digits: spaces, dashes, dots, zero-width characters.
    .replace(/[^a-z0-9]/g, '');
  // i and l look alike in many fonts (PortcuIIis); rn passes for m, vv for w.
  return folded.replace(/i/g, 'l').replace(/rn/g, 'm').replace(/vv/g, 'w');
}

const PRODUCT_SKELETON = nameSkeleton(PRODUCT);
const FIRST_PARTY_SKELETONS = new Set(FIRST_PARTY.map(nameSkeleton));

/** Why `name` is reserved, or undefined when a client may use it. */
export function reservedNameReason(name: string): string | undefined {
  const skeleton = nameSkeleton(name);
  if (skeleton.includes(PRODUCT_SKELETON)) return `it contains the name of this service (${PRODUCT})`;
  if (FIRST_PARTY_SKELETONS.has(skeleton)) return 'it is the name of one of our own apps';
  return undefined;
}
