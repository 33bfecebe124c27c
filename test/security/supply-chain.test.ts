import { readFileSync } from 'node:fs';
import { expect } from 'chai';

/**
 * Issue #6 supply chain: the lockfile pins every package by integrity hash, and install scripts
 * run only for packages we approved by name (npm's allowScripts): argon2, whose script picks its
 * N-API prebuild. A new dependency that wants an install script fails this test until someone
 * decides about it (`npm install-scripts approve|deny <pkg>`).
 */
const root = new URL('../../', import.meta.url);
type LockEntry = { integrity?: string; link?: boolean; hasInstallScript?: boolean; dev?: boolean; version?: string };
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
};
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  allowScripts?: Record<string, boolean>;
  scripts: Record<string, string>;
};
const installed = Object.entries(lock.packages).filter(([path]) => path !== '');
const nameOf = (path: string): string => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);

describe('supply chain', function () {
  it('pins every locked package with a sha512 integrity hash (lockfile v3)', function () {
    expect(lock.lockfileVersion).to.equal(3);
    expect(installed.length).to.be.greaterThan(100);
    const unpinned = installed.filter(([, entry]) => !entry.link && !/^sha512-/.test(entry.integrity ?? '')).map(([path]) => path);
    expect(unpinned).to.deep.equal([]);
  });

  it('lets only approved packages run install scripts, and approves nothing that has none', function () {
    const withScripts = [...new Set(installed.filter(([, entry]) => entry.hasInstallScript).map(([path]) => nameOf(path)))].sort();
    const decided = Object.keys(manifest.allowScripts ?? {}).sort();
    expect(withScripts, 'packages with install scripts need an allowScripts decision').to.deep.equal(decided);
    expect(manifest.allowScripts).to.deep.equal({ argon2: true });
  });

  it('has no lifecycle scripts of its own that run on install', function () {
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(manifest.scripts).not.to.have.property(hook);
  });

  it('fails CI on high or critical advisories in production dependencies', function () {
    const ci = readFileSync(new URL('.ci/run', root), 'utf8');
    expect(ci).to.include('npm audit --omit=dev --audit-level=high');
    expect(ci).to.match(/npm audit found high or critical advisories[^\n]*\n\s*exit 1/);
  });
});
