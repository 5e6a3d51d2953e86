'use strict';

// Persistent cookies: session.persistent (every session) and login(user, {
// remember: true }) ("remember me"). The cookie carries Max-Age (twice the
// idle timeout, never past maxLifetime), is sent again only when the
// session's expiry moves past the cookie's, and a real Chromium keeps it
// across a restart of its profile, where a browser-session cookie is gone.
// Over real HTTP, on Redis and in memory.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const express = require('express');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { startSessionApp } = require('./helpers/session-server');
const { CookieJar, listen } = require('./helpers/http');
const { connectionOptions } = require('../__test__/servers/redis');

const SECRET = 'persistent';
const redis = useRedis();
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Max-Age of the sid cookie a response set, `null` for a browser-session cookie, `undefined` when none was set. */
function maxAgeOf(response) {
  const [line] = response.setCookies.filter((c) => c.startsWith('sid='));
  if (line === undefined) return undefined;
  const match = /; Max-Age=(\d+)/.exec(line);
  return match ? Number(match[1]) : null;
}

for (const storeName of ['Redis', 'memory']) {
  const store = () => (storeName === 'Redis' ? { redis: redis.server } : { mock: true });

  describe(`${storeName}: session.persistent`, () => {
    let app;
    before(async () => {
      app = await startSessionApp(express, { ...store(), session: { secret: SECRET, persistent: true, tti: 2 } });
    });
    after(() => app.close());

    test("a new session's cookie carries Max-Age (twice tti); it is sent again only once the session would outlive it", async () => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.set('a', 1), { jar });
      assert.equal(maxAgeOf(first), 4);
      await delay(1500);
      const soon = await app.run((s) => s.get('a'), { jar });
      assert.equal(maxAgeOf(soon), undefined, 'not sent again while it outlives the session');
      // 3 s in, the cookie (4 s) would end before the session this refresh extends (2 s).
      await delay(1500);
      const later = await app.run((s) => s.get('a'), { jar });
      assert.equal(later.value, 1, 'the session lived');
      assert.equal(maxAgeOf(later), 4, 'sent again, with its Max-Age');
      assert.equal(maxAgeOf(await app.run(() => {}, { jar })), undefined, 'once');
    });

    test('maxLifetime caps the Max-Age', async () => {
      const capped = await startSessionApp(express, { ...store(), session: { secret: SECRET, persistent: true, tti: 600, maxLifetime: 60 } });
      try {
        assert.equal(maxAgeOf(await capped.run(() => {})), 60);
      } finally {
        await capped.close();
      }
    });

    test('session.persistent with awaitTouch: false is refused at construction', () => {
      assert.throws(() => altSession.mock({ session: { secret: 's', persistent: true, awaitTouch: false } }), { code: 'ERR_SESSION_CONFIG' });
    });
  });

  describe(`${storeName}: login(user, { remember: true })`, () => {
    let app;
    before(async () => {
      app = await startSessionApp(express, { ...store(), session: { secret: SECRET, tti: 2 } });
    });
    after(() => app.close());

    test('a remembered sign-in gets a persistent cookie, renewed as the session goes on; a plain one, a browser-session cookie', async () => {
      const jar = new CookieJar();
      assert.equal(maxAgeOf(await app.run((s) => s.set('cart', [1]), { jar })), null, 'anonymous: a browser-session cookie');
      const login = await app.run((s) => s.login('ann', { remember: true }), { jar });
      assert.equal(login.error, undefined);
      assert.equal(maxAgeOf(login), 4);
      await delay(1500);
      assert.equal(maxAgeOf(await app.run((s) => s.userId, { jar })), undefined);
      await delay(1500);
      const later = await app.run((s) => s.userId, { jar });
      assert.equal(later.value, 'ann');
      assert.equal(maxAgeOf(later), 4, 'renewed');
      // Signed in again without remember: back to a browser-session cookie, and no renewal.
      const plain = await app.run((s) => s.login('ann'), { jar });
      assert.equal(maxAgeOf(plain), null);
      await delay(1500);
      await app.run(() => {}, { jar });
      await delay(1500);
      const after = await app.run((s) => s.userId, { jar });
      assert.equal(after.value, 'ann');
      assert.equal(maxAgeOf(after), undefined);
    });

    test("a remembered session's regenerate() keeps its cookie persistent; remember must be a boolean", async () => {
      const jar = new CookieJar();
      await app.run((s) => s.login('bob', { remember: true }), { jar });
      const r = await app.run((s) => s.regenerate(), { jar });
      assert.equal(maxAgeOf(r), 4);
      const bad = await app.run((s) => s.login('bob', { remember: 'yes' }).catch((err) => err.code), { jar });
      assert.equal(bad.value, 'ERR_SESSION_ARGUMENT');
    });
  });
}

// Chromium, with a profile on disk closed and opened again: a persistent cookie is kept, a
// browser-session cookie is not. Skipped, with the reason, where Chromium is not installed.
const { SKIP, LAUNCH } = require('./helpers/chromium');

describe('Chromium, a persistent profile closed and opened again', () => {
  for (const remember of [true, false]) {
    test(`login with remember: ${remember}: signed in after the restart: ${remember}`, { skip: SKIP }, async () => {
      const mw = altSession({ redis: connectionOptions(redis.server), session: { secret: SECRET } });
      const app = express();
      app.use(mw);
      app.get('/login', (req, res, next) =>
        req.session.login('carol', { remember }).then(
          () => res.send('ok'),
          (err) => next(err)
        )
      );
      app.get('/me', (req, res) => res.json({ user: req.session.userId }));
      const server = await listen(app);
      const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-profile-'));
      const { chromium } = require('playwright-core');
      const open = () => chromium.launchPersistentContext(profile, LAUNCH);
      try {
        let context = await open();
        let page = await context.newPage();
        await page.goto(`${server.origin}/login`, { timeout: 10000 });
        await page.goto(`${server.origin}/me`, { timeout: 10000 });
        assert.deepEqual(JSON.parse(await page.textContent('body')), { user: 'carol' });
        await context.close();
        context = await open();
        page = await context.newPage();
        await page.goto(`${server.origin}/me`, { timeout: 10000 });
        assert.deepEqual(JSON.parse(await page.textContent('body')), { user: remember ? 'carol' : null });
        await context.close();
      } finally {
        fs.rmSync(profile, { recursive: true, force: true });
        await server.close();
        await mw.close();
      }
    });
  }
});

describe('Redis: a remembered session across a secret rotation', () => {
  test('the cookie signed again with the new secret stays persistent', async () => {
    const before = await startSessionApp(express, { redis: redis.server, session: { secret: 'old' } });
    const after = await startSessionApp(express, { redis: redis.server, session: { secret: ['new', 'old'] } });
    try {
      const jar = new CookieJar();
      const login = await before.run((s) => s.login('dan', { remember: true }), { jar });
      assert.ok(maxAgeOf(login) > 0);
      const rotated = await after.run((s) => s.userId, { jar });
      assert.equal(rotated.value, 'dan');
      assert.ok(maxAgeOf(rotated) > 0, `re-signed with Max-Age: ${rotated.setCookies}`);
    } finally {
      await Promise.all([before.close(), after.close()]);
    }
  });
});
