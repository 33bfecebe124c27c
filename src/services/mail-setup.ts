import type { Config } from '../config/types.ts';
import type { CryptoBox } from '../shared/crypto-box.ts';
import type { Logger } from '../shared/logger.ts';
import type { OutboxStore } from '../store/outbox.ts';
import type { AuditService } from './audit.ts';
import { createMailService, type MailService } from './mail.ts';
import { createMailTemplates } from './mail-templates.ts';
import { createMailTransport } from './mail-transport.ts';

/**
 * The mail service as the configuration describes it: the outbox in this database, payloads
 * sealed under MASTER_KEY (`box`), templates linking to ISSUER, and the transport MAIL_URL names
 * (or .eml files in development, or none in production without MAIL_URL).
 */
export function createMail({
  config,
  outbox,
  box,
  audit,
  logger,
}: {
  config: Pick<Config, 'issuer' | 'mail' | 'nodeEnv' | 'dataDir'>;
  /** The outbox in this database (built in src/deps.ts). */
  outbox: OutboxStore;
  box: CryptoBox;
  audit: AuditService;
  logger: Logger;
}): MailService {
  return createMailService({
    outbox,
    box,
    templates: createMailTemplates({ issuer: config.issuer }),
    transport: createMailTransport(config, logger),
    settings: config.mail,
    audit,
    logger,
  });
}
