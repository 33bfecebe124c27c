import { Option, type Command } from 'commander';
import type { Deps } from '../deps.ts';
import type { Print, WithDeps } from './context.ts';
import { SIGNING_ALGS, type SigningAlg } from '../services/keys.ts';
import { createKeyRotation, KeyRotationError, rotationPolicyOf, type KeyRotation } from '../services/key-rotation.ts';

export { KeyRotationError };

const rotationOf = (deps: Deps): KeyRotation =>
  createKeyRotation({ store: deps.stores.keys, box: deps.box, policy: rotationPolicyOf(deps.config) });

/**
 * `portcullis keys list|rotate|retire`: the signing-key schedule by hand. Running instances pick
 * the change up within KEYS_REFRESH_SECONDS; nothing restarts.
 */
export function registerSigningKeyCommands(keys: Command, { withDeps, print }: { withDeps: WithDeps; print: Print }): void {
  keys
    .command('list')
    .description('list signing keys: kid, alg, state (next = published, not signing; active; retired), which one signs')
    .action(async () => {
      print(await withDeps((deps) => rotationOf(deps).list()));
    });
  keys
    .command('rotate')
    .description(
      'publish a new signing key per algorithm now; it signs after KEY_ACTIVATE_AFTER seconds, the old one stays published until its tokens expire',
    )
    .addOption(new Option('--alg <alg>', 'only this algorithm').choices([...SIGNING_ALGS]))
    .action(async (opts: { alg?: SigningAlg }) => {
      print(
        await withDeps(async (deps) => ({
          published: await rotationOf(deps).rotate(opts.alg ? [opts.alg] : SIGNING_ALGS),
          activates_after_seconds: deps.config.signingKeys.activateAfterSeconds,
        })),
      );
    });
  keys
    .command('activate <kid>')
    .description('emergency: make a published (next) key sign now instead of after KEY_ACTIVATE_AFTER')
    .action(async (kid: string) => {
      print(await withDeps((deps) => rotationOf(deps).activate(kid)));
    });
  keys
    .command('rotate-cookies')
    .description('add a new cookie signing key: it signs new cookies, older keys keep verifying until SESSION_MAX_SECONDS has passed')
    .action(async () => {
      print(
        await withDeps(async (deps) => ({
          cookie_key: await rotationOf(deps).rotateCookieKeys(),
          old_keys_verify_for_seconds: deps.config.ttl.sessionMax + 60,
        })),
      );
    });
  keys
    .command('retire <kid>')
    .description('stop publishing a superseded key now (it retires by itself once its tokens expired)')
    .option('--force', 'retire even though tokens it signed may still be valid (they will fail verification)')
    .action(async (kid: string, opts: { force?: boolean }) => {
      print(await withDeps((deps) => rotationOf(deps).retire(kid, { force: opts.force ?? false })));
    });
}
