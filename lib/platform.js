'use strict';

/**
 * Which native engine this machine needs, in napi-rs's names: the platform
 * (`linux-x64-gnu`), its prebuilt package (`alt-session-linux-x64-gnu`) and
 * the binary a build from source leaves beside this file
 * (`alt-session.linux-x64-gnu.node`). Read by the loader's error message
 * (native.js) and by the install and build scripts.
 */

const { name, napi } = require('../package.json');

/** The C library of a Linux machine: glibc reports its version, musl does not. */
function linuxLibc() {
  const { header } = process.report.getReport();
  return header.glibcVersionRuntime ? 'gnu' : 'musl';
}

/** This machine, as napi-rs names platforms: `darwin-arm64`, `linux-x64-musl`, `win32-x64-msvc`... */
function platformName() {
  const base = `${process.platform}-${process.arch}`;
  if (process.platform === 'linux') return `${base}-${linuxLibc()}`;
  if (process.platform === 'win32') return `${base}-msvc`;
  return base;
}

/** A Rust target triple (package.json's napi.targets) as a platform name. */
function platformOfTarget(triple) {
  const [cpu, , system, abi] = triple.split('-');
  const arch = { x86_64: 'x64', aarch64: 'arm64', i686: 'ia32', armv7: 'arm' }[cpu] || cpu;
  if (system === 'darwin') return `darwin-${arch}`;
  if (system === 'windows') return `win32-${arch}-${abi}`;
  return `${system}-${arch}-${abi}`;
}

/** The platforms a prebuilt package is published for. */
function prebuiltPlatforms() {
  return napi.targets.map(platformOfTarget);
}

const platform = platformName();

module.exports = {
  platform,
  /** The npm package holding this platform's prebuilt engine. */
  bindingPackage: `${name}-${platform}`,
  /** The file a build from source writes beside the package's index.js and binding.js. */
  localBinary: `${napi.binaryName}.${platform}.node`,
  prebuiltPlatforms,
  platformOfTarget,
};
