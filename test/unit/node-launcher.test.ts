import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(new URL('package.json', `file://${root}`), 'utf8')) as { version: string };

/** The system Node of this machine (Debian's, older than 24), if there is one. */
function olderNode(): string | undefined {
  for (const path of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(path)) continue;
    const major = Number(execFileSyncVersion(path).split('.')[0]?.replace('v', ''));
    if (major < 24) return path;
  }
  return undefined;
}

function execFileSyncVersion(path: string): string {
  return execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
}

describe('scripts/node24.cjs (npm start, npm run cli on any Node)', function () {
  this.timeout(60_000);

  it('runs the CLI in this process on Node 24: portcullis --version prints the package version', async function () {
    const { stdout } = await run(process.execPath, ['scripts/node24.cjs', 'src/cli.ts', '--version'], { cwd: root });
    expect(stdout.trim()).to.equal(version);
  });

  it('on an older Node, stops with one line naming the version needed when it may not fetch one', async function () {
    const node = olderNode();
    if (!node) this.skip();
    const failure = await run(node, ['scripts/node24.cjs', 'src/main.ts'], {
      cwd: root,
      env: { ...process.env, PORTCULLIS_PROVISION_NODE: '0' },
    }).then(
      () => undefined,
      (error: unknown) => error as { code: number; stderr: string },
    );
    expect(failure, 'the launcher exited 0 on an old Node').to.not.equal(undefined);
    expect(failure?.code).to.equal(1);
    const lines = failure?.stderr.trim().split('\n') ?? [];
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^Portcullis needs Node\.js 24 or newer; this is v\d+\./);
  });

  it('on an older Node, runs the command on the provisioned Node 24 (the cache .ci/run fills)', async function () {
    const node = olderNode();
    if (!node || !existsSync(`${process.env.HOME ?? ''}/.cache/portcullis/node24/package/bin/node`)) this.skip();
    const { stdout } = await run(node, ['scripts/node24.cjs', 'src/cli.ts', '--version'], { cwd: root });
    expect(stdout.trim()).to.equal(version);
  });
});
