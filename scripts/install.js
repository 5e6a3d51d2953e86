#!/usr/bin/env node
'use strict';

// `npm install`, where the package manager runs dependencies' install scripts
// (npm 10, or an approved one since npm 11): nothing to do where the engine is
// there already, which is the case for every user on a prebuilt platform (npm
// installed the alt-session-<platform> package, an optionalDependency).
// Otherwise (another platform, or a clone of the repository) it builds the
// engine from source when cargo is there, saying so, rather than leave it to
// the first require (lib/native.js). Without cargo it lets the install finish:
// require('alt-session') then explains what is missing.

const fs = require('node:fs');
const path = require('node:path');

const { platform, bindingPackage, localBinary } = require('../lib/platform');
const { build, canBuildFromSource } = require('./build');

const root = path.join(__dirname, '..');

function hasEngine() {
  if (fs.existsSync(path.join(root, localBinary))) return true;
  try {
    require.resolve(bindingPackage, { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

if (!hasEngine() && canBuildFromSource()) {
  console.error(`alt-session: no prebuilt engine installed for ${platform} (${bindingPackage}): building it from source with cargo`);
  try {
    build();
  } catch (err) {
    console.error(`alt-session: ${err.message}`);
    process.exit(1);
  }
}
