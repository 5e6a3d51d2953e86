#!/usr/bin/env node
'use strict';

// Builds the Rust engine into `alt-session.node` beside index.js.
// `npm install` runs it (also when the package is installed from a tarball),
// and `npm test` runs it with --if-needed to rebuild only after a change.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const output = path.join(root, 'alt-session.node');
const targetDir = path.join(root, 'target');
const sources = ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src'];

function newestSourceTime(entry) {
  const stat = fs.statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return fs
    .readdirSync(entry)
    .reduce((newest, name) => Math.max(newest, newestSourceTime(path.join(entry, name))), 0);
}

function isUpToDate() {
  if (!fs.existsSync(output)) return false;
  const built = fs.statSync(output).mtimeMs;
  return sources.every((entry) => newestSourceTime(path.join(root, entry)) <= built);
}

function libraryName() {
  switch (process.platform) {
    case 'win32': return 'alt_session.dll';
    case 'darwin': return 'libalt_session.dylib';
    default: return 'libalt_session.so';
  }
}

function build() {
  const cargo = process.env.CARGO || 'cargo';
  const args = ['build', '--release', '--locked', '--target-dir', targetDir];
  console.error(`alt-session: building the native engine (${cargo} ${args.join(' ')})`);
  const result = spawnSync(cargo, args, { cwd: root, stdio: 'inherit' });
  if (result.error) {
    console.error(`alt-session: could not run cargo (${result.error.message}); install Rust from https://rustup.rs`);
    process.exit(1);
  }
  if (result.status !== 0) process.exit(result.status || 1);
  // Copy, then rename: a process that has the old file loaded keeps its mapping.
  const temporary = `${output}.tmp`;
  fs.copyFileSync(path.join(targetDir, 'release', libraryName()), temporary);
  fs.renameSync(temporary, output);
}

if (process.argv.includes('--if-needed') && isUpToDate()) process.exit(0);
build();
