'use strict';

// Found by using the package as careless or hostile code would: a Redis out
// of memory, regenerate() misused, scripts Redis forgot, error texts, keys
// that are not well-formed or too long, removals past maxFields. (Worker
// threads: workers.test.js.)

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { startRedis } = require('../__test__/servers/redis');
const { connectRedis } = require('../__test__/servers/redis-client');
const { startSessionApp, withSessionApp } = require('./helpers/session-server');
const { cookiesNamed, cookieHeader, unsignSid, CookieJar } = require('./helpers/http');

const SECRET = 'robustness';

/** A private Redis and a raw client on it, for the tests of one describe. */
function privateRedis(options) {
  const redis = {};
  before(async () => {
    redis.server = await startRedis(options);
    redis.db = connectRedis(redis.server);
  });
  after(async () => {
    await redis.db.quit();
    await redis.server.stop();
  });
  return redis;
}

/** Resolves what a promise settled with: `['ok', value]` or `['error', code]`. */
const outcome = (promise) =>
  promise.then(
    (value) => ['ok', value],
    (err) => ['error', err.code]
  );

describe('Redis out of memory (maxmemory, noeviction)', () => {
  const redis = privateRedis();
  let app;
  before(async () => {
    app = await startSessionApp(express, { redis: redis.server, session: { secret: SECRET } });
  });
  after(() => app.close());

  test('writes fail with ERR_SESSION_STORE_FULL and write nothing; removals, reads and signed-in read-only routes still work', async (t) => {
    const jar = new CookieJar();
    const { session } = await app.run((s) => s.mset({ a: 1, b: 2 }), { jar });
    const key = `session:${session.id}`;
    const signedIn = new CookieJar();
    await app.run(async (s) => (await s.set('cart', [1]), await s.login('ann')), { jar: signedIn });
    await redis.db.command('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await redis.db.command('CONFIG', 'SET', 'maxmemory', '1mb');
    try {
      const memory = async () => Number(/used_memory:(\d+)/.exec(await redis.db.command('INFO', 'memory'))[1]);
      const before = await memory();
      const big = 'x'.repeat(500 * 1024);
      const r = await app.run(
        async (s) => {
          const writes = [];
          for (let i = 0; i < 30; i++) writes.push(await outcome(s.set(`big${i}`, big)));
          return {
            writes,
            mset: await outcome(s.mset({ c: big })),
            incr: await outcome(s.incr('n')),
            read: await s.getAll(),
            removed: await outcome(s.remove('a')),
          };
        },
        { jar }
      );
      assert.equal(r.error, undefined);
      assert.deepEqual(r.value.writes, Array(30).fill(['error', 'ERR_SESSION_STORE_FULL']));
      assert.deepEqual(
        [r.value.mset, r.value.incr],
        [
          ['error', 'ERR_SESSION_STORE_FULL'],
          ['error', 'ERR_SESSION_STORE_FULL'],
        ]
      );
      assert.deepEqual(r.value.read, { a: 1, b: 2 }, 'nothing was written');
      assert.deepEqual(r.value.removed, ['ok', undefined], 'a removal frees memory: it passes');
      const grown = (await memory()) - before;
      t.diagnostic(`used_memory grew by ${grown} bytes over 30 refused writes of 500 KB`);
      assert.ok(grown < 1024 * 1024, `Redis grew by ${grown} bytes`);
      assert.deepEqual(await redis.db.sessionData(key), { b: '2' });

      // A signed-in visitor's read-only route: its per-request refresh
      // cannot record the time, and still says who is signed in.
      const reader = await app.run(async (s) => ({ user: s.userId, all: await s.getAll() }), { jar: signedIn });
      assert.equal(reader.status, 200, reader.middlewareError && reader.middlewareError.message);
      assert.deepEqual(reader.value, { user: 'ann', all: { cart: [1] } });

      // A new visitor's session cannot be recorded either: the route runs,
      // and its first write says why it fails.
      const visitor = await app.run((s) => outcome(s.set('a', 1)));
      assert.equal(visitor.status, 200, visitor.middlewareError && visitor.middlewareError.message);
      assert.deepEqual(visitor.value, ['error', 'ERR_SESSION_STORE_FULL']);
    } finally {
      await redis.db.command('CONFIG', 'SET', 'maxmemory', '0');
    }
    const again = await app.run((s) => s.set('c', 3), { jar });
    assert.equal(again.error, undefined, 'with memory back, writes work');
    assert.deepEqual(await redis.db.sessionData(key), { b: '2', c: '3' });
  });
});

describe('regenerate() used carelessly', () => {
  const redis = privateRedis();
  const STORES = {
    Redis: () => ({ redis: redis.server, session: { secret: SECRET } }),
    memory: () => ({ mock: true, session: { secret: SECRET } }),
  };

  for (const [storeName, options] of Object.entries(STORES)) {
    describe(storeName, () => {
      let app;
      before(async () => {
        app = await startSessionApp(express, options());
      });
      after(() => app.close());

      /** A browser whose session holds `{ cart: [1] }`. */
      async function browserWithCart() {
        const jar = new CookieJar();
        const { session } = await app.run((s) => s.set('cart', [1]), { jar });
        return { jar, id: session.id, cookie: jar.header() };
      }

      /** The one sid cookie a response set: the id it carries. */
      function sidOf(r) {
        const sids = cookiesNamed(r.setCookies);
        assert.equal(sids.length, 1, `one sid Set-Cookie: ${r.setCookies}`);
        return unsignSid(sids[0].value, SECRET);
      }

      test('regenerate() then set() in the same tick: the new cookie holds the old data and the new key', async () => {
        const { jar, id } = await browserWithCart();
        const r = await app.run(
          async (s) => {
            const regenerated = s.regenerate();
            const written = s.set('user', 'ann');
            await Promise.all([regenerated, written]);
            return s.id;
          },
          { jar }
        );
        assert.equal(r.error, undefined);
        assert.notEqual(r.value, id);
        assert.equal(sidOf(r), r.value);
        const after = await app.run((s) => s.getAll(), { jar });
        assert.deepEqual([after.session.id, after.value], [r.value, { cart: [1], user: 'ann' }]);
        assert.deepEqual((await app.run((s) => s.getAll(), { cookie: `sid=${encodeURIComponent(`s:${id}`)}` })).value, {});
      });

      test('two regenerate() calls at once in one request: one cookie, for a session holding the data', async () => {
        const { jar } = await browserWithCart();
        const r = await app.run(
          async (s) => {
            await Promise.all([s.regenerate(), s.regenerate()]);
            return s.id;
          },
          { jar }
        );
        assert.equal(r.error, undefined);
        assert.equal(sidOf(r), r.value);
        assert.deepEqual((await app.run((s) => s.getAll(), { jar })).value, { cart: [1] });
      });

      test('two requests regenerating one cookie at once (a double-submitted log-in): the data ends under a cookie either way', async (t) => {
        let conflicts = 0;
        for (let i = 0; i < 20; i++) {
          const { cookie, id } = await browserWithCart();
          const login = (s) => s.regenerate().then(() => s.set('user', 'ann'));
          const [first, second] = await Promise.all([app.run(async (s) => outcome(login(s)), { cookie }), app.run(async (s) => outcome(login(s)), { cookie })]);
          const results = [first, second];
          const won = results.filter((r) => r.value[0] === 'ok');
          const lost = results.filter((r) => r.value[0] === 'error');
          conflicts += lost.length;
          assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.value)));
          assert.deepEqual(lost[0].value, ['error', 'ERR_SESSION_CONFLICT']);
          assert.deepEqual(cookiesNamed(lost[0].setCookies), [], 'the conflicting response sends no sid cookie');
          const winner = sidOf(won[0]);
          assert.notEqual(winner, id);
          // Whichever response came last, the browser holds the winner's cookie.
          const held = await app.run((s) => s.getAll(), { cookie: cookieHeader(won[0].setCookies) });
          assert.deepEqual(held.value, { cart: [1], user: 'ann' });
        }
        t.diagnostic(`${conflicts} conflicts in 20 double submissions`);
      });

      test('regenerate() after the response was sent fails with ERR_SESSION_HEADERS_SENT and renames nothing', async () => {
        const { jar, id } = await browserWithCart();
        const r = await app.run(
          async (s, req, res) => {
            res.end('sent');
            return outcome(s.regenerate());
          },
          { jar }
        );
        assert.deepEqual(r.value, ['error', 'ERR_SESSION_HEADERS_SENT']);
        assert.equal(r.session.id, id);
        const after = await app.run((s) => s.getAll(), { jar });
        assert.deepEqual([after.session.id, after.value], [id, { cart: [1] }], 'the old cookie still holds the data');
      });

      test('a write that would move to a fresh session after the response was sent fails, writing nothing', async () => {
        const { jar, cookie } = await browserWithCart();
        await app.run((s) => s.invalidate(), { jar });
        const keysBefore = storeName === 'Redis' && (await redis.db.keys('session:*'));
        const r = await app.run(
          async (s, req, res) => {
            res.end('sent');
            return outcome(s.set('x', 1));
          },
          { cookie }
        );
        assert.deepEqual(r.value, ['error', 'ERR_SESSION_HEADERS_SENT']);
        if (storeName === 'Redis') assert.deepEqual(await redis.db.keys('session:*'), keysBefore, 'no session written');
      });
    });
  }
});

describe('Redis forgets its scripts (SCRIPT FLUSH) under load: calls apply in the order they were issued', () => {
  const redis = privateRedis();
  let app;
  before(async () => {
    app = await startSessionApp(express, { redis: redis.server, session: { secret: SECRET } });
  });
  after(() => app.close());

  /** Runs `body()` with other sessions written in a bounded background loop. */
  async function underLoad(body) {
    let stop = false;
    const lanes = Array.from({ length: 4 }, async () => {
      const jar = new CookieJar();
      while (!stop) await app.run((s) => s.incr('n'), { jar });
    });
    try {
      return await body();
    } finally {
      stop = true;
      await Promise.all(lanes);
    }
  }

  test('set() then get() in one tick: the get sees the set whenever the set succeeded', async (t) => {
    const jar = new CookieJar();
    await app.run((s) => s.set('k', 0), { jar });
    let failed = 0;
    await underLoad(async () => {
      for (let i = 1; i <= 20; i++) {
        const r = await app.run(
          async (s) => {
            await redis.db.command('SCRIPT', 'FLUSH');
            const set = outcome(s.set('k', i));
            const get = outcome(s.get('k'));
            return { set: await set, get: await get, now: await s.get('k') };
          },
          { jar }
        );
        assert.equal(r.error, undefined);
        if (r.value.set[0] === 'ok') {
          assert.deepEqual(r.value.get, ['ok', i], `run ${i}: the get ran before the set`);
        } else {
          failed++;
          assert.equal(r.value.set[1], 'ERR_SESSION_STORE');
          assert.notEqual(r.value.now, i, `run ${i}: a set reported failed was applied`);
          await app.run((s) => s.set('k', i), { jar });
        }
      }
    });
    t.diagnostic(`${failed} of 20 sets failed rather than run out of order`);
  });

  test('set() then invalidate() in one tick: the session never comes back', async (t) => {
    let failed = 0;
    await underLoad(async () => {
      for (let i = 0; i < 20; i++) {
        const jar = new CookieJar();
        const { session } = await app.run((s) => s.set('user', 'ann'), { jar });
        const cookie = jar.header();
        const r = await app.run(
          async (s) => {
            await redis.db.command('SCRIPT', 'FLUSH');
            const set = outcome(s.set('x', 1));
            await s.invalidate();
            return set;
          },
          { cookie }
        );
        assert.equal(r.error, undefined);
        if (r.value[0] === 'error') failed++;
        jar.store(r.setCookies);
        assert.equal(jar.get('sid'), undefined, `run ${i}: the browser was given a live session after invalidate()`);
        assert.equal(await redis.db.exists(`session:${session.id}`), false, `run ${i}: the invalidated session is back`);
        const after = await app.run((s) => s.getAll(), { cookie });
        assert.deepEqual(after.value, {});
      }
    });
    t.diagnostic(`${failed} of 20 sets failed rather than run after the invalidate()`);
  });
});

describe('error hygiene', () => {
  describe('a Redis that wants a password none was given', () => {
    const redis = privateRedis({ password: 'secret' });
    test('every call fails with ERR_SESSION_AUTH and says so, from the first', async () => {
      const { port } = redis.server;
      await withSessionApp(express, { redis: { port, host: '127.0.0.1' }, session: { secret: SECRET } }, async (app) => {
        for (let i = 0; i < 3; i++) {
          const r = await app.run((s) => s.get('a'));
          assert.equal(r.error.code, 'ERR_SESSION_AUTH', r.error.message);
          assert.match(r.error.message, /requires a password/);
        }
      });
    });
  });

  describe("Redis's error texts", () => {
    // EVALSHA renamed away: Redis answers "unknown command ..., with args
    // beginning with: <sha> 1 session:<id> ...", the session's key and values.
    const redis = privateRedis({ args: ['--rename-command', 'EVALSHA', 'EVALSHA_RENAMED'] });
    test('carry neither the session id nor the values', async () => {
      await withSessionApp(express, { redis: redis.server, session: { secret: SECRET, awaitTouch: false } }, async (app) => {
        const r = await app.run(async (s) => ({ id: s.id, set: await s.set('secret', 'hunter2').catch((err) => err) }));
        const err = r.value.set;
        assert.ok(err instanceof Error);
        assert.equal(err.code, 'ERR_SESSION_STORE');
        assert.match(err.message, /unknown command/);
        assert.equal(err.message.includes(r.value.id), false, err.message);
        assert.equal(err.message.includes('hunter2'), false, err.message);
        assert.equal(String(err.stack).includes(r.value.id), false);
      });
    });
  });
});

describe('session keys', () => {
  for (const mock of [false, true]) {
    const redis = mock ? null : privateRedis();
    test(`${mock ? 'memory' : 'Redis'}: lone surrogates and keys over 1024 bytes are refused; well-formed ones of 1024 bytes are kept`, async () => {
      const options = mock ? { mock: true } : { redis: redis.server };
      await withSessionApp(express, { ...options, session: { secret: SECRET } }, async (app) => {
        const r = await app.run(async (s) => ({
          high: await outcome(s.set('k\uD800', 1)),
          low: await outcome(s.set('k\uDC01', 2)),
          inMset: await outcome(s.mset({ fine: 1, 'k\uD801': 2 })),
          get: await outcome(s.get('k\uD800')),
          long: await outcome(s.set('é'.repeat(513), 1)),
          longest: await outcome(s.set('é'.repeat(512), 1)),
          pair: await outcome(s.set('k\uD83D\uDE00', 3)),
          all: await s.getAll(),
        }));
        assert.equal(r.error, undefined);
        const { all, ...outcomes } = r.value;
        assert.deepEqual(outcomes, {
          high: ['error', 'ERR_SESSION_ARGUMENT'],
          low: ['error', 'ERR_SESSION_ARGUMENT'],
          inMset: ['error', 'ERR_SESSION_ARGUMENT'],
          get: ['error', 'ERR_SESSION_ARGUMENT'],
          long: ['error', 'ERR_SESSION_TOO_LARGE'],
          longest: ['ok', undefined],
          pair: ['ok', undefined],
        });
        assert.deepEqual(all, { ['é'.repeat(512)]: 1, 'k😀': 3 }, 'nothing else was written');
      });
    });

    test(`${mock ? 'memory' : 'Redis'}: remove() of 5,000 keys works past maxFields`, async () => {
      const options = mock ? { mock: true } : { redis: redis.server };
      await withSessionApp(express, { ...options, session: { secret: SECRET } }, async (app) => {
        const keys = Array.from({ length: 5000 }, (_, i) => `k${i}`);
        const r = await app.run(async (s) => {
          await s.mset(Object.fromEntries(keys.slice(0, 1000).map((k) => [k, 1])));
          const full = Object.keys(await s.getAll()).length;
          await s.remove(keys);
          return { full, after: await s.getAll() };
        });
        assert.equal(r.error, undefined);
        assert.deepEqual(r.value, { full: 1000, after: {} });
      });
    });
  }
});
