'use strict';

// A real browser (Debian's Chromium, driven by playwright-core) on a page of an
// Express app on this package: right after its first load the page fires 20
// fetch() writes at once with the cookie it just got; a reload shows all 20
// under the same id. The cookie is HttpOnly (not in document.cookie), and
// logging out ends the session. On Redis and on the memory backend (the
// example app's own browser test is test/example-app.test.js).
//
// Skipped, with the reason, only when Chromium is not installed (.ci/run
// installs it: apt-get install chromium).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { SKIP, launchChromium } = require('./helpers/chromium');
const { connectionOptions } = require('../__test__/servers/redis');
const { listen } = require('./helpers/http');

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
    browser = await launchChromium();
  });
  after(async () => {
    if (browser) await browser.close();
  });

  const STORES = {
    Redis: () => altSession({ redis: connectionOptions(redis.server), session: { secret: SECRET } }),
    memory: () => altSession.mock({ session: { secret: SECRET } }),
  };

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
