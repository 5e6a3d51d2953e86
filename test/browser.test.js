'use strict';

// A real browser (Debian's Chromium, driven by playwright-core) on a page of an
// Express app on this package: right after its first load the page fires 20
// fetch() writes at once with the cookie it just got; a reload shows all 20
// under the same id. The cookie is HttpOnly (not in document.cookie), and
// logging out ends the session. And the example app's "your sessions" page,
// with two browser contexts as two devices. On Redis and on the memory backend.
//
// Skipped, with the reason, only when Chromium is not installed (.ci/run
// installs it: apt-get install chromium).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const express = require('express');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { connectionOptions } = require('../__test__/servers/redis');
const { listen } = require('./helpers/http');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SKIP = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
const WRITES = 20;
const SECRET = 'browser test';
/** Every browser step is bounded: a stuck page fails the test, never hangs it. */
const STEP_MS = 10000;

const redis = useRedis();

/** The page: on its first load it writes 20 keys in parallel; on every load it shows the session. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>alt-session</title>
<pre id="state">loading</pre>
<script>
  (async () => {
    const session = await (await fetch('/api/session')).json();
    if (session.count === 0) {
      const writes = Array.from({ length: ${WRITES} }, (_, i) =>
        fetch('/api/item/k' + i, { method: 'POST' }).then((r) => r.json()));
      session.writes = await Promise.all(writes);
    }
    session.documentCookie = document.cookie;
    document.getElementById('state').textContent = JSON.stringify(session);
    window.done = session;
  })();
</script>`;

function appOn(mw) {
  const app = express();
  app.use(mw);
  app.get('/', (req, res) => res.type('html').send(PAGE));
  app.get('/api/session', async (req, res, next) => {
    try {
      const all = await req.session.getAll();
      res.json({ id: req.session.id, count: Object.keys(all).length, all });
    } catch (err) {
      next(err);
    }
  });
  app.post('/api/item/:key', async (req, res, next) => {
    try {
      await req.session.set(req.params.key, true);
      res.json({ id: req.session.id });
    } catch (err) {
      next(err);
    }
  });
  app.post('/api/logout', async (req, res, next) => {
    try {
      await req.session.invalidate();
      res.json({ ok: true });
    } catch (err) {
      next(err);
    }
  });
  return app;
}

/** Runs examples/app.js (`npm start`) on a free port; resolves `{ origin, stop }`. */
function startExample(env) {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'examples', 'app.js')], {
    env: { ...process.env, PORT: '0', SESSION_SECRET: SECRET, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', resolve);
      child.kill('SIGTERM');
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the example app did not start within 10 s')), STEP_MS);
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const listening = /listening on (http:\/\/\S+)/.exec(output);
      if (!listening) return;
      clearTimeout(timer);
      resolve({ origin: listening[1], stop });
    });
    child.once('exit', (code) => reject(new Error(`the example app exited (${code}): ${output}`)));
  });
}

/** Loads `url` (or reloads) and waits for the page's script to finish; returns what it found. */
async function loadState(page, url) {
  if (url) await page.goto(url, { timeout: STEP_MS });
  else await page.reload({ timeout: STEP_MS });
  await page.waitForFunction(() => window.done, null, { timeout: STEP_MS });
  return page.evaluate(() => window.done);
}

// Each test is skipped on its own (not the describe), so that a machine
// without Chromium counts them in the run's `# skipped`.
describe('a real browser (Chromium)', () => {
  let browser;
  before(async () => {
    if (SKIP) return;
    const { chromium } = require('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30000,
      // A fresh temporary profile (playwright's); this machine's network is
      // closed, so Chromium's own background traffic is turned off.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    if (browser) await browser.close();
  });

  const STORES = {
    Redis: () => altSession({ redis: connectionOptions(redis.server), session: { secret: SECRET } }),
    memory: () => altSession.mock({ session: { secret: SECRET } }),
  };

  for (const storeName of Object.keys(STORES)) {
    test(`${storeName}: the example app's "your sessions" page lists two devices; "sign out all other sessions" signs the other out`, {
      skip: SKIP,
    }, async () => {
      const env = storeName === 'Redis' ? { REDIS_URL: redis.server.url } : {};
      const example = await startExample(env);
      const devices = [];
      try {
        for (const name of ['device A', 'device B']) {
          const context = await browser.newContext({ userAgent: name });
          const page = await context.newPage();
          await page.goto(example.origin, { timeout: STEP_MS });
          await page.fill('input[name=username]', 'ann', { timeout: STEP_MS });
          await page.click('text=Log in', { timeout: STEP_MS });
          assert.equal(await page.textContent('#user', { timeout: STEP_MS }), 'ann');
          devices.push({ context, page });
        }
        const [a, b] = devices;
        await a.page.click('text=Your sessions', { timeout: STEP_MS });
        const rows = () => a.page.$$eval('tr.session', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[3].textContent]));
        assert.deepEqual((await rows()).sort(), [
          ['device A', 'this device'],
          ['device B', ''],
        ]);

        await a.page.click('text=Sign out all other sessions', { timeout: STEP_MS });
        assert.deepEqual(await rows(), [['device A', 'this device']]);
        await b.page.reload({ timeout: STEP_MS });
        assert.equal(await b.page.textContent('body', { timeout: STEP_MS }).then((t) => t.includes('Not logged in.')), true, 'device B is signed out');
        await a.page.goto(example.origin, { timeout: STEP_MS });
        assert.equal(await a.page.textContent('#user', { timeout: STEP_MS }), 'ann', 'device A is still signed in');
      } finally {
        for (const { context } of devices) await context.close();
        await example.stop();
      }
    });
  }

  for (const [storeName, middleware] of Object.entries(STORES)) {
    test(`${storeName}: 20 parallel fetch() writes after the first load all land in one session; HttpOnly; log-out ends it`, { skip: SKIP }, async () => {
      const mw = middleware();
      const { origin, close } = await listen(appOn(mw));
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        const first = await loadState(page, origin);
        assert.equal(first.count, 0);
        assert.deepEqual(
          first.writes.map((w) => w.id),
          Array(WRITES).fill(first.id),
          'every write under the first id'
        );

        const reloaded = await loadState(page);
        assert.equal(reloaded.id, first.id, 'the same session after the reload');
        assert.deepEqual(reloaded.all, Object.fromEntries(Array.from({ length: WRITES }, (_, i) => [`k${i}`, true])));
        if (storeName === 'Redis') {
          assert.equal(Object.keys(await redis.db.sessionData(`session:${first.id}`)).length, WRITES);
        }

        const [cookie] = (await context.cookies(origin)).filter((c) => c.name === 'sid');
        assert.equal(cookie.httpOnly, true);
        assert.equal(reloaded.documentCookie.includes('sid='), false, 'the page script cannot read the cookie');

        const loggedOut = await page.evaluate(() => fetch('/api/logout', { method: 'POST' }).then((r) => r.json()));
        assert.deepEqual(loggedOut, { ok: true });
        assert.deepEqual(
          (await context.cookies(origin)).filter((c) => c.name === 'sid'),
          [],
          'the browser dropped the cookie'
        );
        if (storeName === 'Redis') assert.equal(await redis.db.exists(`session:${first.id}`), false);
        const after = await loadState(page);
        assert.notEqual(after.id, first.id, 'a fresh session after log-out');
        assert.equal(after.writes.length, WRITES, 'the fresh session starts empty');
      } finally {
        await context.close();
        await close();
        await mw.close();
      }
    });
  }
});
