#!/usr/bin/env node
'use strict';

// Builds the Rust engine for this machine into `alt-session.<platform>.node`
// beside index.js, where binding.js looks first.
//
// In a clone (the napi-rs CLI is a devDependency): `napi build --platform
// --release`, which also writes the loader (binding.js) and the native
// typings (binding.d.ts). Where the CLI is not installed (a user's machine
// with no prebuilt package: install.js, or lib/native.js at the first require):
// `cargo build --release` and the same copy napi makes.
//
//   node scripts/build.js               (npm run build)
//   node scripts/build.js --if-needed   (npm test: only when a source is newer than the binary)

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const { localBinary } = require('../lib/platform');

const output = path.join(root, localBinary);
const sources = ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src'];

function newestSourceTime(entry) {
  const stat = fs.statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return fs.readdirSync(entry).reduce((newest, name) => Math.max(newest, newestSourceTime(path.join(entry, name))), 0);
}

function isUpToDate() {
  if (!fs.existsSync(output)) return false;
  const built = fs.statSync(output).mtimeMs;
  return sources.every((entry) => newestSourceTime(path.join(root, entry)) <= built);
}

/** The napi-rs CLI's script, when it is installed (a clone, not a user's app). */
function napiCli() {
  let manifest;
  try {
    manifest = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
  } catch {
    return null;
  }
  const { bin } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  return path.join(path.dirname(manifest), typeof bin === 'string' ? bin : bin.napi);
}

function run(command, args, what) {
  console.error(`alt-session: ${what} (${[command, ...args].join(' ')})`);
  // stdout to stderr: at a first require (lib/native.js) the app's own stdout stays its own.
  const result = spawnSync(command, args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (result.error) throw new Error(`could not run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} failed (${result.signal || `exit code ${result.status}`})`);
}

/** The host's target triple, as rustc names it (`x86_64-unknown-linux-gnu`). */
function hostTriple() {
  const rustc = spawnSync(process.env.RUSTC || 'rustc', ['-vV'], { encoding: 'utf8' });
  const host = /^host: (\S+)$/m.exec(rustc.stdout || '');
  if (!host) throw new Error('could not ask rustc for the host target (rustc -vV)');
  return host[1];
}

/**
 * `cargo build --release --target <host>`, as `napi build --platform` runs
 * it (so a target folder both use shares its built dependencies), then the
 * copy napi makes.
 */
function buildWithCargo() {
  const cargo = process.env.CARGO || 'cargo';
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  const triple = hostTriple();
  run(cargo, ['build', '--release', '--locked', '--target', triple, '--target-dir', targetDir], 'building the native engine from source');
  const library = { win32: 'alt_session.dll', darwin: 'libalt_session.dylib' }[process.platform] || 'libalt_session.so';
  // Copy, then rename: a process that has the old file loaded keeps its mapping.
  fs.copyFileSync(path.join(targetDir, triple, 'release', library), `${output}.tmp`);
  fs.renameSync(`${output}.tmp`, output);
}

/** Whether this machine can build the engine: cargo runs, and the sources are here. */
function canBuildFromSource() {
  if (!fs.existsSync(path.join(root, 'Cargo.toml'))) return false;
  const probe = spawnSync(process.env.CARGO || 'cargo', ['--version'], { stdio: 'ignore' });
  return !probe.error && probe.status === 0;
}

function build() {
  const napi = napiCli();
  const args = ['build', '--platform', '--release', '--js', 'binding.js', '--dts', 'binding.d.ts'];
  if (napi) run(process.execPath, [napi, ...args], 'building the native engine with the napi-rs CLI');
  else buildWithCargo();
}

module.exports = { build, canBuildFromSource, isUpToDate, output };

if (require.main === module) {
  try {
    if (!(process.argv.includes('--if-needed') && isUpToDate())) build();
  } catch (err) {
    console.error(`alt-session: ${err.message}`);
    process.exit(1);
  }
}
