import { expect } from 'chai';
import { loadConfig } from '../../src/config/load.ts';
import { createDeps, type Deps } from '../../src/deps.ts';
import { createKeyRotation, KeyRotationError, type KeyRotation, type KeySummary } from '../../src/services/key-rotation.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { testConfigEnv } from '../helpers/servers.ts';

/**
 * The signing-key schedule as a state machine, with the clock passed in: next → active after
 * activateAfterSeconds, superseded → retired after retireAfterSeconds, automatic rotation after
 * rotateAfterDays, and the emergency path (activate now, retire forced).
 */
describe('signing-key schedule', function () {
  let deps: Deps;
  let rotation: KeyRotation;
  const policy = { activateAfterSeconds: 3600, retireAfterSeconds: 660, rotateAfterDays: 90, cookieRetireAfterSeconds: 1_209_660 };
  const later = (seconds: number) => new Date(Date.now() + seconds * 1000);
  const signer = (keys: KeySummary[], alg: string) => keys.find((k) => k.alg === alg && k.signing);

  before(async function () {
    const config = loadConfig(testConfigEnv());
    deps = await createDeps(config, { logger: createLogger(config) });
    await deps.keys.ensureSigningKeys();
    rotation = createKeyRotation({ store: deps.stores.keys, box: deps.box, policy });
    // Settle whatever earlier suites left waiting, so this test starts from a clean schedule.
    for (const key of (await rotation.list()).filter((k) => k.state === 'next')) await rotation.activate(key.kid);
  });

  after(async function () {
    await deps.close();
  });

  it('publishes, activates, retires on schedule; refuses unsafe steps; emergency activation works', async function () {
    const oldSigner = signer(await rotation.list(), 'ES256')!;
    const [fresh] = await rotation.rotate(['ES256']);
    expect(fresh).to.include({ alg: 'ES256', state: 'next', signing: false });
    expect((await deps.keys.publicJwks()).keys.map((k) => k.kid)).to.include(fresh!.kid);

    // Not yet: still published only.
    expect((await rotation.advance(later(60))).activated).to.not.include(fresh!.kid);
    expect(signer(await rotation.list(), 'ES256')!.kid).to.equal(oldSigner.kid);

    // After activateAfterSeconds it signs; the old key is superseded but still published.
    expect((await rotation.advance(later(3601))).activated).to.include(fresh!.kid);
    const afterActivation = await rotation.list();
    expect(signer(afterActivation, 'ES256')!.kid).to.equal(fresh!.kid);
    expect(afterActivation.find((k) => k.kid === oldSigner.kid)).to.include({ state: 'active', signing: false });
    expect((await deps.keys.privateJwks()).keys.find((k) => k.alg === 'ES256')!.kid).to.equal(fresh!.kid);

    // Retiring early is refused; retirement happens once its tokens have expired.
    const early = await rotation.retire(oldSigner.kid).catch((error: unknown) => error);
    expect(early).to.be.instanceOf(KeyRotationError);
    expect((await rotation.advance(later(60))).retired).to.not.include(oldSigner.kid);
    expect((await rotation.advance(later(700))).retired).to.include(oldSigner.kid);
    expect((await deps.keys.publicJwks()).keys.map((k) => k.kid)).to.not.include(oldSigner.kid);

    // The signer cannot be retired; a second rotation cannot start while one waits.
    expect(await rotation.retire(fresh!.kid).catch((error: unknown) => (error as Error).message)).to.match(/current ES256 signing key/);
    const [emergency] = await rotation.rotate(['ES256']);
    expect(await rotation.rotate(['ES256']).catch((error: unknown) => (error as Error).message)).to.match(/already published/);

    // Emergency: activate now, retire the leaked key by force.
    expect(await rotation.activate(emergency!.kid)).to.include({ state: 'active', signing: true });
    expect(await rotation.retire(fresh!.kid, { force: true })).to.include({ state: 'retired' });
    expect(signer(await rotation.list(), 'ES256')!.kid).to.equal(emergency!.kid);

    // Scheduled rotation: a signing key older than rotateAfterDays gets a successor published.
    const { rotated } = await rotation.advance(later(91 * 86_400));
    expect(rotated.length).to.be.greaterThanOrEqual(1);
    const waiting = (await rotation.list()).filter((k) => k.state === 'next');
    expect(waiting.map((k) => k.kid)).to.include.members(rotated);
    // Leave no key waiting for later suites.
    for (const key of waiting) await rotation.activate(key.kid);
  });
});
