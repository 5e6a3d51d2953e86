'use strict';

// Rollout: the original alt-session@0.0.1 and ours side by side on one Redis,
// same secret, same prefix. A session either one started is the other's too.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const cookieParser = require('cookie-parser');
const redisModule = require('redis');
const originalAltSession = require('alt-session-original');
const { connectRedis } = require('../__test__/servers/redis-client');
const { useRedis } = require('./helpers/fixtures');
const { MODES, sessionServer, startSessionApp } = require('./helpers/session-server');
const { cookiesNamed, CookieJar } = require('./helpers/http');

const SECRET = 'keyboard cat';
const ORIGINAL_ID = /^[A-Za-z0-9+/]{43}=[A-Za-z0-9]{8}$/;
const NEW_ID = /^[A-Za-z0-9_-]{43}$/;

const redis = useRedis(); // redis.db: database 0

/**
 * The original's middleware behind cookie-parser(secret), its setup. It keeps
 * its redis@3 client to itself; we catch it at creation to quit it at close.
 */
async function startOriginalApp(session) {
  const clients = [];
  const createClient = redisModule.createClient;
  redisModule.createClient = (...args) => {
    const client = createClient.apply(redisModule, args);
    clients.push(client);
    return client;
  };
  let mw;
  try {
    mw = originalAltSession({ redis: redis.server.options, session });
  } finally {
    redisModule.createClient = createClient;
  }
  assert.equal(clients.length, 1, 'caught the original redis client');
  const server = await sessionServer(express, [cookieParser(SECRET), mw]);
  return {
    run: server.run,
    close: async () => {
      await server.close();
      await Promise.all(clients.map((c) => new Promise((resolve) => c.quit(() => resolve()))));
    },
  };
}

/** `session[method](...args)` through a callback: the only style the original has. */
function call(session, method, ...args) {
  return new Promise((resolve, reject) => {
    session[method](...args, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

async function bump(session) {
  const n = ((await call(session, 'get', 'n')) || 0) + 1;
  await call(session, 'set', 'n', n);
  return n;
}

const VALUES = {
  text: 'hé "quoted" \\ \n',
  numeric: '42',
  empty: '',
  zero: 0,
  negative: -1.5,
  big: 1e21,
  yes: true,
  no: false,
  nothing: null,
  object: { a: 1, nested: { list: [1, 'two', null] } },
  array: [1, 'x', { y: [] }],
};

for (const [modeName, modeOptions] of Object.entries(MODES)) {
  describe(`alt-session@0.0.1 and ours (${modeName}) on one Redis`, () => {
    let original;
    let ours;
    before(async () => {
      original = await startOriginalApp({ prefix: 'shared' });
      ours = await startSessionApp(express, { redis: redis.server, ...modeOptions(SECRET, { prefix: 'shared' }) });
    });
    after(async () => {
      await original.close();
      await ours.close();
    });

    /** A browser holding a cookie the original issued, for an id with + and / in it. */
    async function browserWithOriginalId() {
      for (let attempt = 0; attempt < 200; attempt++) {
        const jar = new CookieJar();
        const { session } = await original.run((s) => call(s, 'set', 'from', 'original'), { jar });
        if (/\+/.test(session.id) && /\//.test(session.id)) return { jar, id: session.id };
      }
      throw new Error('the original issued no id holding both + and /');
    }

    test('a session the original started (52-char id with + / =) is read and written by ours', async () => {
      const { jar, id } = await browserWithOriginalId();
      assert.match(id, ORIGINAL_ID);

      const r = await ours.run(
        async (s) => {
          const from = await s.get('from');
          await s.set('by', 'ours');
          return from;
        },
        { jar }
      );
      assert.equal(r.error, undefined);
      assert.deepEqual([r.session.isNew, r.session.id, r.value], [false, id, 'original']);
      assert.deepEqual(r.setCookies, [], 'ours keeps the original cookie');
      assert.deepEqual(await redis.db.sessionData(`shared:${id}`), { from: '"original"', by: '"ours"' });
      assert.equal((await original.run((s) => call(s, 'get', 'by'), { jar })).value, 'ours');
    });

    test('a session ours started is read and written by the original', async () => {
      const jar = new CookieJar();
      const mine = await ours.run((s) => s.set('from', 'ours'), { jar });
      assert.match(mine.session.id, NEW_ID);

      const r = await original.run(
        async (s) => {
          const from = await call(s, 'get', 'from');
          await call(s, 'set', 'by', 'original');
          return from;
        },
        { jar }
      );
      assert.deepEqual([r.session.isNew, r.session.id, r.value], [false, mine.session.id, 'ours']);
      assert.deepEqual(r.setCookies, []);
      assert.equal((await ours.run((s) => s.get('by'), { jar })).value, 'original');
    });

    test('a cookie ours issued without writing: a later write through ours lands under it, and the original reads it', async () => {
      const jar = new CookieJar();
      const issued = await ours.run(() => {}, { jar });
      assert.match(issued.session.id, NEW_ID);
      const cookie = jar.header();
      const written = await ours.run((s) => s.set('cart', [42]), { cookie });
      assert.equal(written.error, undefined);
      assert.deepEqual([written.session.id, written.session.isNew], [issued.session.id, false]);
      assert.deepEqual(cookiesNamed(written.setCookies), [], 'no new cookie');
      const read = await original.run((s) => call(s, 'get', 'cart'), { cookie });
      assert.deepEqual([read.session.id, read.value], [issued.session.id, [42]]);
      // And the other way round: the original writes under our unwritten id, ours reads it.
      const other = new CookieJar();
      const mine = await ours.run(() => {}, { jar: other });
      await original.run((s) => call(s, 'set', 'by', 'original'), { cookie: other.header() });
      const back = await ours.run((s) => s.get('by'), { cookie: other.header() });
      assert.deepEqual([back.session.id, back.value, back.setCookies], [mine.session.id, 'original', []]);
    });

    test('a cookie the original issued without writing: parallel writes through ours all land under its id', async () => {
      const jar = new CookieJar();
      const issued = await original.run(() => {}, { jar });
      assert.match(issued.session.id, ORIGINAL_ID);
      assert.equal(await redis.db.exists(`shared:${issued.session.id}`), false, 'the original stored nothing');
      const cookie = jar.header();
      const writes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          ours.run(
            async (s) => {
              await s.set(`k${i}`, i);
              return s.id;
            },
            { cookie }
          )
        )
      );
      for (const w of writes) {
        assert.equal(w.error, undefined);
        assert.equal(w.value, issued.session.id, 'written under the original id');
        assert.deepEqual(cookiesNamed(w.setCookies), [], 'no new cookie');
      }
      const read = await original.run((s) => call(s, 'mget', ['k0', 'k19']), { cookie });
      assert.deepEqual(read.value, { k0: 0, k19: 19 });
      const all = await ours.run((s) => s.getAll(), { cookie });
      assert.equal(Object.keys(all.value).length, 20);
    });

    test('a counter incremented alternately by both continues', async () => {
      const jar = new CookieJar();
      const counts = [];
      for (const app of [original, ours, original, ours, ours, original]) counts.push((await app.run(bump, { jar })).value);
      assert.deepEqual(counts, [1, 2, 3, 4, 5, 6]);
    });

    test('values set by one read identically by the other (get, mget, getAll)', async () => {
      const keys = Object.keys(VALUES);
      const jar = new CookieJar();
      await original.run((s) => call(s, 'mset', VALUES), { jar });
      const readByOurs = await ours.run(
        async (s) => ({
          each: Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await s.get(k)]))),
          mget: await s.mget(keys),
          all: await s.getAll(),
        }),
        { jar }
      );
      assert.deepEqual(readByOurs.value, { each: VALUES, mget: VALUES, all: VALUES });

      const other = new CookieJar();
      await ours.run((s) => s.mset(VALUES), { jar: other });
      const readByOriginal = await original.run(
        async (s) => ({
          each: Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await call(s, 'get', k)]))),
          mget: await call(s, 'mget', keys),
        }),
        { jar: other }
      );
      assert.deepEqual(readByOriginal.value, { each: VALUES, mget: VALUES });
    });

    test("invalidate() from ours is seen by the original, and the original's by ours", async () => {
      const jar = new CookieJar();
      const { session } = await original.run((s) => call(s, 'set', 'user', 'ann'), { jar });
      const oldCookie = jar.header();
      const gone = await ours.run((s) => s.invalidate(), { jar });
      assert.equal(cookiesNamed(gone.setCookies).length, 1);
      assert.equal(await redis.db.exists(`shared:${session.id}`), false);
      const stale = await original.run((s) => call(s, 'get', 'user'), { cookie: oldCookie });
      assert.deepEqual([stale.session.id, stale.value], [session.id, null]);
      assert.equal((await original.run(() => {}, { jar })).session.isNew, true, 'the cleared cookie is gone');

      const jar2 = new CookieJar();
      const started = await ours.run((s) => s.set('user', 'bob'), { jar: jar2 });
      const cookie = jar2.header();
      await original.run((s) => call(s, 'invalidate'), { jar: jar2 });
      const after = await ours.run((s) => s.get('user'), { cookie });
      assert.deepEqual([after.session.id, after.value], [started.session.id, null]);
    });
  });
}

describe('alt-session@0.0.1 and ours with dbIndex 2', () => {
  test('both use the same database', async () => {
    const original = await startOriginalApp({ dbIndex: 2 });
    const ours = await startSessionApp(express, { redis: redis.server, ...MODES['session.secret'](SECRET, { dbIndex: 2 }) });
    const db2 = connectRedis(redis.server, 2);
    try {
      const jar = new CookieJar();
      const counts = [];
      for (const app of [original, ours, original]) counts.push((await app.run(bump, { jar })).value);
      const { session } = await ours.run(() => {}, { jar });
      assert.deepEqual(counts, [1, 2, 3]);
      assert.deepEqual(await db2.sessionData(`session:${session.id}`), { n: '3' });
      assert.equal(await redis.db.exists(`session:${session.id}`), false);
    } finally {
      await Promise.all([original.close(), ours.close(), db2.quit()]);
    }
  });
});
