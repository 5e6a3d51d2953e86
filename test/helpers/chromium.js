'use strict';

// What the browser tests share (Debian's Chromium, driven by playwright-core),
// and the example app they and scripts/screenshot.js drive.

const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** `false`, or why the browser tests skip (each test on its own, so a run counts them). */
const SKIP = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;

/**
 * How Chromium is started: headless, and with its own background traffic off
 * (this machine's network is closed). `launchPersistentContext(profile, ...)`
 * takes the same options.
 */
const LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  timeout: 30000,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** Chromium, with a fresh temporary profile (playwright's). */
function launchChromium() {
  return require('playwright-core').chromium.launch(LAUNCH);
}

/**
 * Runs examples/app.js (`npm start`) on a free port, in memory unless `env`
 * gives REDIS_URL; resolves `{ origin, stop }` once it listens (within `timeoutMs`).
 */
function startExample(env = {}, timeoutMs = 10000) {
  const child = spawn(process.execPath, [path.join(__dirname, '..', '..', 'examples', 'app.js')], {
    env: { ...process.env, PORT: '0', SESSION_SECRET: 'example app', REDIS_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example app did not start within ${timeoutMs} ms`)), timeoutMs);
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const listening = /listening on (http:\/\/\S+)/.exec(output);
      if (!listening) return;
      clearTimeout(timer);
      resolve({ origin: listening[1], stop });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example app exited (${code}): ${output}`));
    });
  });
}

module.exports = { CHROMIUM, SKIP, LAUNCH, launchChromium, startExample };
