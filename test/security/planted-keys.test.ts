import { chmod, chown, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { resolveKey, StartupError } from '../../src/shared/dev-keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { rejectionOf } from '../helpers/rejections.ts';

const logger = createLogger({ logLevel: 'silent' });
const spec = { name: 'MASTER_KEY', value: undefined, fileName: 'master.key' };

/**
 * R13 (issue 19, adversarial review): in embedded mode the master key is generated once into
 * DATA_DIR and read back on every start. A key file someone else planted there (while the
 * directory was world-writable, before the first start) would be used to seal every secret, and
 * they would hold it. A key file is used only when this process's user owns it and nobody else
 * may read or write it; otherwise the start stops with the command that fixes it.
 */
describe('R13 key files in DATA_DIR: only our own, private ones are used', function () {
  let dataDir: string;
  let path: string;
  const planted = randomBytes(32);

  beforeEach(async function () {
    dataDir = await mkdtemp(join(tmpdir(), 'portcullis-keys-'));
    path = join(dataDir, 'master.key');
  });
  afterEach(async function () {
    await rm(dataDir, { recursive: true, force: true });
  });

  const resolve = () => resolveKey(spec, { dataDir, embedded: true, logger });

  it('R13 a key file readable by group or others (0644) is refused with the chmod command, and not replaced', async function () {
    await writeFile(path, `${planted.toString('base64')}\n`, { mode: 0o644 });
    await chmod(path, 0o644);
    const error = await rejectionOf(resolve);
    expect(error).to.be.instanceOf(StartupError);
    expect((error as Error).message)
      .to.include(path)
      .and.to.include(`chmod 600 ${path}`);
    expect((error as Error).message).not.to.include('\n');
    // Nothing is overwritten: what the operator sees is what was planted.
    expect((await readFile(path, 'utf8')).trim()).to.equal(planted.toString('base64'));
    for (const mode of [0o640, 0o604, 0o620, 0o602]) {
      await chmod(path, mode);
      expect(await rejectionOf(resolve), mode.toString(8)).to.be.instanceOf(StartupError);
    }
  });

  it('R13 a key file owned by another user is refused (as root: chowned to nobody), even with mode 0600', async function () {
    if (process.getuid?.() !== 0) this.skip();
    await writeFile(path, `${planted.toString('base64')}\n`, { mode: 0o600 });
    await chown(path, 65534, 65534);
    const error = await rejectionOf(resolve);
    expect(error).to.be.instanceOf(StartupError);
    expect((error as Error).message)
      .to.include(path)
      .and.to.include('uid 65534');
    expect((error as Error).message).to.include(`chown 0 ${path}`);
  });

  it('R13 a symlink in place of the key file is refused', async function () {
    const elsewhere = join(dataDir, 'elsewhere.key');
    await writeFile(elsewhere, `${planted.toString('base64')}\n`, { mode: 0o600 });
    await symlink(elsewhere, path);
    const error = await rejectionOf(resolve);
    expect(error).to.be.instanceOf(StartupError);
    expect((error as Error).message).to.include(path);
  });

  it('R13 a key file we generated (ours, 0600) is read back unchanged; a missing one is generated 0600', async function () {
    const generated = await resolve();
    expect(generated).to.have.length(32);
    expect((await stat(path)).mode & 0o777).to.equal(0o600);
    expect(await resolve()).to.deep.equal(generated);
    await writeFile(path, `${planted.toString('base64')}\n`, { mode: 0o600 });
    expect(await resolve()).to.deep.equal(planted);
  });
});
