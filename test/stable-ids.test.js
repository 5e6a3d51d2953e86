'use strict';

// A session keeps its id: an issued id names the same session in every later
// request that carries its cookie, however many of them write at once, until
// invalidate(), regenerate(), the idle timeout or maxLifetime ends it; an
// ended id is never written again. Clients here do NOT follow Set-Cookie
// (API clients, load tests, a second tab): each keeps the cookie it got first.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { setTimeout: delay } = require('node:timers/promises');
const { useRedis } = require('./helpers/fixtures');
const { listen, request, cookiesNamed, cookieHeader, unsignSid } = require('./helpers/http');
const { connectionOptions } = require('../__test__/servers/redis');
const altSession = require('..');

const SECRET = 'stable ids';
const redis = useRedis();

/** The two stores, as the options of our middleware. */
const STORES = {
  Redis: (session = {}) => altSession({ redis: connectionOptions(redis.server), session: { secret: SECRET, ...session } }),
  memory: (session = {}) => altSession.mock({ session: { secret: SECRET, ...session } }),
};

/** An Express app whose routes answer `{ id, isNew, ... }` as JSON. */
async function startApp(mw) {
  const app = express();
  app.use(mw);
  const answer = (handler) => async (req, res) => {
    try {
      const result = await handler(req.session, req); // first: a write may move the session
      res.json({ id: req.session.id, isNew: req.session.isNew, ...result });
    } catch (err) {
      res.status(500).json({ code: err.code, message: err.message });
    }
  };
  app.get(
    '/',
    answer(() => ({}))
  );
  app.post(
    '/incr',
    answer(async (s) => ({ n: await s.incr('hits') }))
  );
  app.post(
    '/set/:key',
    answer(async (s, req) => (await s.set(req.params.key, req.params.key), {}))
  );
  app.post(
    '/remove/:key',
    answer(async (s, req) => (await s.remove(req.params.key), {}))
  );
  app.get(
    '/all',
    answer(async (s) => ({ all: await s.getAll() }))
  );
  const { origin, close } = await listen(app);
  return {
    origin,
    close: async () => {
      await close();
      await mw.close();
    },
  };
}

/** A fresh visitor's cookie, from a request that stores nothing. */
async function freshCookie(origin) {
  const first = await request(origin, '/');
  assert.equal(first.status, 200, first.body);
  assert.equal(first.json.isNew, true);
  return { cookie: cookieHeader(first.setCookies), id: first.json.id };
}

/** Asserts that none of `responses` failed, moved to another id, or sent a sid cookie. */
function assertAllKept(responses, id) {
  const moved = responses.filter((r) => r.status !== 200 || r.json.id !== id || r.json.isNew);
  assert.deepEqual(
    moved.map((r) => r.body),
    [],
    'responses that failed or moved to another id'
  );
  const withCookie = responses.filter((r) => cookiesNamed(r.setCookies).length > 0);
  assert.deepEqual(
    withCookie.map((r) => r.setCookies),
    [],
    'responses that sent a sid cookie'
  );
}

for (const [storeName, middleware] of Object.entries(STORES)) {
  describe(`${storeName}: parallel first writes from a client that ignores Set-Cookie`, () => {
    let app;
    before(async () => {
      app = await startApp(middleware());
    });
    after(() => app.close());

    test('100 concurrent incr() on one fresh cookie read back 100, under the issued id', async () => {
      const { cookie, id } = await freshCookie(app.origin);
      const responses = await Promise.all(Array.from({ length: 100 }, () => request(app.origin, '/incr', { method: 'POST', cookie })));
      assertAllKept(responses, id);
      assert.deepEqual(
        responses.map((r) => r.json.n).sort((a, b) => a - b),
        Array.from({ length: 100 }, (_, i) => i + 1),
        'every increment counted once'
      );
      const read = await request(app.origin, '/all', { cookie });
      assert.deepEqual([read.json.id, read.json.all], [id, { hits: 100 }]);
    });

    test('50 concurrent set() of different keys all read back under the issued id', async () => {
      const { cookie, id } = await freshCookie(app.origin);
      const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
      const responses = await Promise.all(keys.map((k) => request(app.origin, `/set/${k}`, { method: 'POST', cookie })));
      assertAllKept(responses, id);
      const read = await request(app.origin, '/all', { cookie });
      assert.equal(read.json.id, id);
      assert.deepEqual(read.json.all, Object.fromEntries(keys.map((k) => [k, k])));
      if (storeName === 'Redis') {
        assert.deepEqual(Object.keys(await redis.db.sessionData(`session:${id}`)).sort(), [...keys].sort());
      }
    });

    test('a session whose every key was removed keeps its id', async () => {
      const { cookie, id } = await freshCookie(app.origin);
      await request(app.origin, '/set/a', { method: 'POST', cookie });
      const removed = await request(app.origin, '/remove/a', { method: 'POST', cookie });
      assert.equal(removed.json.id, id);
      const written = await request(app.origin, '/set/b', { method: 'POST', cookie });
      assert.deepEqual([written.json.id, written.setCookies], [id, []]);
      assert.deepEqual(await readAll(app.origin, cookie), { id, isNew: false, all: { b: 'b' } });
    });
  });
}

describe('Redis: what an issued, unused session costs', () => {
  test('one hash holding its creation time, expiring after tti', async (t) => {
    const app = await startApp(STORES.Redis({ tti: 120 }));
    try {
      const { id } = await freshCookie(app.origin);
      const key = `session:${id}`;
      const stored = await redis.db.hgetall(key);
      assert.deepEqual(Object.keys(stored), ['\0created']);
      assert.match(stored['\0created'], /^\d{13}$/);
      const ttl = await redis.db.ttl(key);
      assert.ok(ttl > 110 && ttl <= 120, `TTL ${ttl}`);
      const bytes = await redis.db.command('MEMORY', 'USAGE', key);
      t.diagnostic(`MEMORY USAGE of an issued, unused session: ${bytes} bytes`);
      assert.ok(bytes > 0 && bytes < 200, `${bytes} bytes`);
    } finally {
      await app.close();
    }
  });
});

/**
 * Runs `count` races, at most `lanes` at a time: each creates a session
 * holding `{ user }`, then `race(cookie, session)` runs its requests.
 */
async function races(origin, count, lanes, race) {
  const results = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < count) {
        const i = next++;
        const created = await request(origin, `/set/user`, { method: 'POST' });
        assert.equal(created.status, 200, created.body);
        results[i] = await race(cookieHeader(created.setCookies), created.json.id, i);
      }
    })
  );
  return results;
}

/** Reads what a request holding `cookie` sees: `{ id, all }`. */
async function readAll(origin, cookie) {
  const r = await request(origin, '/all', { cookie });
  assert.equal(r.status, 200, r.body);
  return r.json;
}

for (const [storeName, middleware] of Object.entries(STORES)) {
  describe(`${storeName}: no resurrection, now that issued ids live`, () => {
    test('200 regenerate() / set() races on one cookie: the old id is never written again', async (t) => {
      const mw = middleware();
      const app = express();
      app.use(mw);
      app.post('/set/:key', async (req, res) => {
        await req.session.set(req.params.key, req.params.key);
        res.json({ id: req.session.id, isNew: req.session.isNew });
      });
      app.post('/regenerate', async (req, res) => {
        await req.session.regenerate();
        res.json({ id: req.session.id });
      });
      app.get('/all', async (req, res) => res.json({ id: req.session.id, all: await req.session.getAll() }));
      const { origin, close } = await listen(app);
      try {
        let moved = 0;
        const outcomes = await races(origin, 200, 8, async (cookie, oldId, i) => {
          // Either request may go first, by 0 to 2 ms.
          const after = (ms, path) => delay(ms).then(() => request(origin, path, { method: 'POST', cookie }));
          const [regenerated, write] = await Promise.all([after(i % 2 ? i % 3 : 0, '/regenerate'), after(i % 2 ? 0 : i % 3, '/set/x')]);
          assert.equal(regenerated.status, 200, regenerated.body);
          assert.equal(write.status, 200, write.body);
          const newCookie = cookieHeader(regenerated.setCookies);
          assert.equal(unsignSid(newCookie.split('=')[1], SECRET), regenerated.json.id);
          const renamed = await readAll(origin, newCookie);
          assert.equal(renamed.id, regenerated.json.id);
          if (write.json.id === oldId) {
            // Written before the rename: it moved with the data.
            assert.deepEqual(cookiesNamed(write.setCookies), []);
            assert.deepEqual(renamed.all, { user: 'user', x: 'x' });
          } else {
            moved++;
            assert.equal(write.json.isNew, true);
            assert.deepEqual(renamed.all, { user: 'user' });
            assert.deepEqual((await readAll(origin, cookieHeader(write.setCookies))).all, { x: 'x' });
          }
          return { oldId, cookie };
        });
        t.diagnostic(`${moved} of 200 writes came after the rename and moved to a fresh id`);
        for (const { oldId, cookie } of outcomes) {
          if (storeName === 'Redis') assert.equal(await redis.db.exists(`session:${oldId}`), false, oldId);
          assert.deepEqual((await readAll(origin, cookie)).all, {}, `the old id ${oldId} reads empty`);
        }
      } finally {
        await close();
        await mw.close();
      }
    });

    test('200 writes racing the idle timeout: each lands in the live session or moves, never revives', async (t) => {
      const app = await startApp(middleware({ tti: 1 }));
      try {
        let moved = 0;
        // Every session is created, then written once at a random moment
        // around its expiry (900 to 1100 ms later).
        const outcomes = await races(app.origin, 200, 100, async (cookie, oldId) => {
          await delay(900 + Math.random() * 200);
          const write = await request(app.origin, '/set/x', { method: 'POST', cookie });
          assert.equal(write.status, 200, write.body);
          const seen = await readAll(app.origin, write.json.id === oldId ? cookie : cookieHeader(write.setCookies));
          if (write.json.id === oldId) {
            // Landed in the live session: its earlier data is still there
            // (a revived id would hold only the new write).
            assert.deepEqual(cookiesNamed(write.setCookies), []);
            assert.deepEqual(seen.all, { user: 'user', x: 'x' });
          } else {
            moved++;
            assert.equal(write.json.isNew, true);
            assert.deepEqual(seen.all, { x: 'x' });
            assert.deepEqual((await readAll(app.origin, cookie)).all, {}, 'the expired id stays empty');
          }
          return write;
        });
        t.diagnostic(`${200 - moved} writes landed before the expiry, ${moved} after it (moved)`);
        assert.equal(outcomes.length, 200);
      } finally {
        await app.close();
      }
    });

    test('maxLifetime: a write after the absolute deadline moves to a fresh id; the old one stays gone', async () => {
      const app = await startApp(middleware({ maxLifetime: 1, tti: 60 }));
      try {
        const { cookie, id } = await freshCookie(app.origin);
        const early = await request(app.origin, '/set/a', { method: 'POST', cookie });
        assert.equal(early.json.id, id);
        await delay(1100);
        const late = await request(app.origin, '/set/b', { method: 'POST', cookie });
        assert.notEqual(late.json.id, id);
        assert.equal(late.json.isNew, true);
        assert.deepEqual((await readAll(app.origin, cookie)).all, {});
        if (storeName === 'Redis') assert.equal(await redis.db.exists(`session:${id}`), false);
      } finally {
        await app.close();
      }
    });
  });
}
