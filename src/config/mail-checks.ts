import { verifiedEmailRequired } from './sign-up.ts';
import type { Config } from './types.ts';

/** A feature that sends mail, and whether the configuration turns it on. */
export type MailFeature = { name: string; enabled: (config: Config) => boolean };

/**
 * Every feature that sends mail (issue 12). A feature that sends mail adds itself here, with the
 * setting that turns it on, so production refuses to start it without a way to deliver its mail
 * (productionSettingProblems) instead of queueing mail nobody receives. Features always on list
 * `enabled: () => true`.
 */
export const MAIL_FEATURES: readonly MailFeature[] = [
  // Codes to new addresses, and notices to addresses that already have an account (docs/email.md).
  { name: 'self-registration (SELF_REGISTRATION)', enabled: (config) => config.signUp.enabled },
  // Codes to accounts whose address is not verified yet, before their sign-in finishes.
  { name: 'email verification (REQUIRE_VERIFIED_EMAIL)', enabled: verifiedEmailRequired },
];

/** The default MAIL_FROM names localhost: fine for .eml files, refused by real mail servers. */
const LOCAL_SENDER = /@localhost>?\s*$/i;

/**
 * Problems of the mail settings in production for the features that send mail: a transport
 * (MAIL_URL) and a real sender. Empty when no feature needs mail, or outside production, where
 * mail without MAIL_URL is written to DATA_DIR/outbox/ instead.
 */
export function mailProblems(config: Config, features: readonly string[]): string[] {
  if (config.nodeEnv !== 'production' || features.length === 0) return [];
  const problems: string[] = [];
  const needs = `${features.join(', ')} ${features.length === 1 ? 'sends' : 'send'} mail`;
  if (!config.mail.url)
    problems.push(`MAIL_URL (or MAIL_URL_FILE) must be set: ${needs}, and without MAIL_URL mail is only written to files (development)`);
  if (LOCAL_SENDER.test(config.mail.from)) problems.push(`MAIL_FROM must be an address of your domain (${needs}; got ${config.mail.from})`);
  return problems;
}

/** The names of the enabled features that send mail. */
export const enabledMailFeatures = (config: Config, features: readonly MailFeature[] = MAIL_FEATURES): string[] =>
  features.filter((feature) => feature.enabled(config)).map((feature) => feature.name);
