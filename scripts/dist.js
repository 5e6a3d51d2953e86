#!/usr/bin/env node
'use strict';

// `npm run dist`: the tarballs a user of this machine's platform would
// download, in dist/: the main package (listing every platform package as an
// optionalDependency, as `napi pre-publish` writes it at release) and this
// platform's binary package (npm/<platform>/, napi-rs's layout). Install both
// with `npm install dist/*.tgz`: nothing compiles.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { build, isUpToDate, output } = require('./build');
const { platform, platformOfTarget } = require('../lib/platform');

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** `npm pack` of `dir` into dist/; returns the tarball's path. */
function pack(dir) {
  const [info] = JSON.parse(execFileSync(npm, ['pack', '--json', '--pack-destination', dist], { cwd: dir, encoding: 'utf8' }));
  return path.join(dist, info.filename);
}

/** The files `npm pack` takes from the root (package.json's `files`), copied into `stage`. */
function stageMainPackage(stage) {
  const [listing] = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json'], { cwd: root, encoding: 'utf8' }));
  for (const { path: file } of listing.files) {
    fs.mkdirSync(path.dirname(path.join(stage, file)), { recursive: true });
    fs.copyFileSync(path.join(root, file), path.join(stage, file));
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  manifest.optionalDependencies = Object.fromEntries(manifest.napi.targets.map((target) => [`${manifest.name}-${platformOfTarget(target)}`, manifest.version]));
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

function main() {
  // The engine this checkout builds: rebuilt only when a source is newer than it.
  if (!isUpToDate()) build();
  fs.rmSync(dist, { recursive: true, force: true });
  fs.mkdirSync(dist);

  const platformDir = path.join(root, 'npm', platform);
  if (!fs.existsSync(path.join(platformDir, 'package.json'))) {
    throw new Error(`no npm/${platform}/package.json: ${platform} is not among package.json's napi.targets`);
  }
  fs.copyFileSync(output, path.join(platformDir, path.basename(output)));
  const tarballs = [pack(platformDir)];

  const stage = path.join(dist, 'stage');
  stageMainPackage(stage);
  tarballs.push(pack(stage));
  fs.rmSync(stage, { recursive: true, force: true });

  for (const tarball of tarballs) console.log(path.relative(process.cwd(), tarball));
}

try {
  main();
} catch (err) {
  console.error(`dist: ${err.message}`);
  process.exit(1);
}
