#!/usr/bin/env node
'use strict';

// The README's screenshots of the example app (examples/app.js), taken with
// Debian's Chromium through playwright-core: the app runs in memory on a free
// port, two browsers sign in as the same user (a desktop Chrome and an
// iPhone), and this writes
//   docs/screenshot.png        the devices page, desktop (1000 x 700)
//   docs/screenshot-phone.png  the home page just after signing in, 390 px wide
// Run: node scripts/screenshot.js   (CHROMIUM_PATH for another Chromium)

const fs = require('node:fs');
const path = require('node:path');
const { SKIP, launchChromium, startExample } = require('../test/helpers/chromium');

const root = path.join(__dirname, '..');
const docs = path.join(root, 'docs');
const STEP_MS = 10000;
const DESKTOP = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';

async function signIn(page, origin, name) {
  await page.goto(origin, { timeout: STEP_MS });
  await page.fill('#username', name, { timeout: STEP_MS });
  await page.fill('#password', 'demo', { timeout: STEP_MS });
  await Promise.all([page.waitForURL(`${origin}/`, { timeout: STEP_MS }), page.click('button:has-text("Sign in")', { timeout: STEP_MS })]);
}

async function main() {
  if (SKIP) throw new Error(SKIP);
  fs.mkdirSync(docs, { recursive: true });
  const example = await startExample();
  const browser = await launchChromium();
  try {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true, userAgent: IPHONE });
    const desktop = await browser.newContext({ viewport: { width: 1000, height: 700 }, colorScheme: 'light', userAgent: DESKTOP });
    const phonePage = await phone.newPage();
    const desktopPage = await desktop.newPage();

    // The phone first, so that the desktop's list shows it as seen a moment ago.
    await signIn(phonePage, example.origin, 'ann');
    await phonePage.screenshot({ path: path.join(docs, 'screenshot-phone.png'), fullPage: false });

    await signIn(desktopPage, example.origin, 'ann');
    await desktopPage.goto(`${example.origin}/devices`, { timeout: STEP_MS });
    await desktopPage.screenshot({ path: path.join(docs, 'screenshot.png') });

    for (const name of ['screenshot.png', 'screenshot-phone.png']) {
      console.log(`docs/${name}: ${fs.statSync(path.join(docs, name)).size} bytes`);
    }
  } finally {
    await browser.close();
    await example.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
