'use strict';

// Session security over real HTTP, Express and a real Redis (and the
// in-memory store): regenerate() against fixation, strict ids (a dead id is
// never revived by a write), no resurrection when invalidate() races a write,
// invalidate() then a write in one request, incr() and getAll().

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: delay } = require('node:timers/promises');
const { randomBytes } = require('node:crypto');
const express = require('express');
const { useRedis } = require('./helpers/fixtures');
const { MODES, startSessionApp, withSessionApp } = require('./helpers/session-server');
const { cookiesNamed, cookieHeader, isClearing, unsignSid, signedSidCookie, CookieJar } = require('./helpers/http');

const SECRET = 'keyboard cat';
const NEW_ID = /^[A-Za-z0-9_-]{43}$/;

const redis = useRedis(); // redis.db: database 0, where the default app stores `session:<id>`

/** The two stores, as options for startSessionApp (read after `before` ran: redis.server is set then). */
const STORES = {
  Redis: (session = {}) => ({ redis: redis.server, session: { secret: SECRET, ...session } }),
  memory: (session = {}) => ({ mock: true, session: { secret: SECRET, ...session } }),
};

const key = (id) => `session:${id}`;

/** Runs `body(app)` with an app of ours that is closed afterwards. */
const withApp = (options, body) => withSessionApp(express, options, body);

/** Runs `worker(i)` for i in [0, count) with at most `concurrency` at a time; resolves the results in order. */
async function pool(count, concurrency, worker) {
  const results = new Array(count);
  let next = 0;
  const lanes = Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++;
      results[i] = await worker(i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/**
 * The one sid Set-Cookie of a response, checked to set (not clear) a cookie
 * whose signed id is `id`.
 */
function assertSetsSid(setCookies, id, message = '') {
  const sids = cookiesNamed(setCookies);
  assert.equal(sids.length, 1, `${message} exactly one sid Set-Cookie: ${JSON.stringify(setCookies)}`);
  assert.equal(isClearing(sids[0]), false, `${message} the sid cookie is not a clearing one`);
  assert.equal(unsignSid(sids[0].value, SECRET), id, `${message} the cookie carries the session's id, signed`);
}

/** A session's state as a request holding `cookie` sees it: the id, isNew and every field. */
async function readWith(app, cookie) {
  const r = await app.run(async (s) => ({ id: s.id, isNew: s.isNew, all: await s.getAll() }), { cookie });
  assert.equal(r.error, undefined);
  return { ...r.value, setCookies: r.setCookies };
}

for (const [storeName, storeOptions] of Object.entries(STORES)) {
  const isRedis = storeName === 'Redis';

  /** Asserts that nothing is stored under `id` (EXISTS on Redis, and a read through the app on both stores). */
  async function assertGone(app, id, message = '') {
    if (isRedis) assert.equal(await redis.db.exists(key(id)), false, `${message} ${key(id)} must not exist`);
    const { all } = await readWith(app, signedSidCookie(id, SECRET));
    assert.deepEqual(all, {}, `${message} the id ${id} reads as an empty session`);
  }

  describe(`${storeName} store`, () => {
    for (const [modeName, modeOptions] of Object.entries(MODES)) {
      describe(`regenerate(), ${modeName}`, () => {
        let app;
        before(async () => {
          const { session, ...rest } = storeOptions();
          const { secret, ...sessionWithoutSecret } = session; // the mode decides where the secret goes
          app = await startSessionApp(express, { ...rest, ...modeOptions(secret, sessionWithoutSecret) });
        });
        after(() => app.close());

        test('new id and signed cookie, same data; the old id is dead and a write from it goes to a fresh id', async () => {
          const jar = new CookieJar();
          const first = await app.run((s) => s.mset({ user: 'ann', role: 'admin' }), { jar });
          assert.equal(first.error, undefined);
          const oldId = first.session.id;
          const oldCookie = jar.header();
          if (isRedis) assert.equal(await redis.db.exists(key(oldId)), true);

          const r = await app.run(
            async (s) => {
              const before = s.id;
              await s.regenerate();
              return { before, after: s.id, isNew: s.isNew };
            },
            { jar }
          );
          assert.equal(r.error, undefined);
          const newId = r.value.after;
          assert.equal(r.value.before, oldId);
          assert.match(newId, NEW_ID);
          assert.notEqual(newId, oldId, 'regenerate() changes the id');
          assertSetsSid(r.setCookies, newId, 'regenerate():');
          assert.equal(cookiesNamed(r.setCookies)[0].attributes.path, '/');
          assert.equal(cookiesNamed(r.setCookies)[0].attributes.httponly, true);

          if (isRedis) {
            assert.equal(await redis.db.exists(key(oldId)), false, 'the old key is gone at once');
            assert.deepEqual(await redis.db.sessionData(key(newId)), { user: '"ann"', role: '"admin"' }, 'the data moved');
            const ttl = await redis.db.ttl(key(newId));
            assert.ok(ttl > 290 && ttl <= 300, `the moved session has the idle TTL: ${ttl}`);
            // Only the marker of the move is left, a plain string for 10 s: no session.
            const marker = `${key(oldId)}:moved`;
            assert.deepEqual(await redis.db.keys(`*${oldId}*`), [marker]);
            assert.equal(await redis.db.type(marker), 'string');
            const markerTtl = await redis.db.command('PTTL', marker);
            assert.ok(markerTtl > 0 && markerTtl <= 10000, `marker PTTL ${markerTtl}`);
          }

          // The browser follows the new cookie: same data, same id, no new cookie.
          const back = await readWith(app, jar.header());
          assert.deepEqual(back.all, { user: 'ann', role: 'admin' });
          assert.equal(back.id, newId);
          assert.equal(back.isNew, false);
          assert.deepEqual(cookiesNamed(back.setCookies), []);

          // Whoever kept the old cookie (the fixating attacker) sees nothing...
          const stale = await app.run(async (s) => ({ user: await s.get('user'), all: await s.getAll() }), { cookie: oldCookie });
          assert.deepEqual(stale.value, { user: null, all: {} });

          // ...and writing with it does not recreate the old key: a fresh id and cookie instead.
          const write = await app.run(
            async (s) => {
              await s.set('user', 'mallory');
              return { id: s.id, isNew: s.isNew };
            },
            { cookie: oldCookie }
          );
          assert.equal(write.error, undefined);
          assert.equal(write.session.id, write.value.id);
          assert.notEqual(write.value.id, oldId, 'the old id is not revived');
          assert.notEqual(write.value.id, newId);
          assert.match(write.value.id, NEW_ID);
          assert.equal(write.value.isNew, true);
          assertSetsSid(write.setCookies, write.value.id, 'write with the old cookie:');

          await assertGone(app, oldId, 'after a write with the old cookie:');
          if (isRedis) {
            assert.deepEqual(await redis.db.sessionData(key(write.value.id)), { user: '"mallory"' });
            assert.deepEqual(await redis.db.sessionData(key(newId)), { user: '"ann"', role: '"admin"' });
          }
          assert.deepEqual((await readWith(app, jar.header())).all, { user: 'ann', role: 'admin' }, 'the regenerated session is untouched');
        });

        test('regenerate(cb) calls back once with no error; later writes in the request land on the new id', async () => {
          const jar = new CookieJar();
          const { session } = await app.run((s) => s.set('a', 1), { jar });
          const r = await app.run(
            async (s) => {
              const calls = [];
              const returned = s.regenerate((...args) => calls.push(args));
              assert.ok(returned instanceof Promise);
              await returned;
              await delay(5);
              await s.set('b', 2);
              return { calls, id: s.id };
            },
            { jar }
          );
          assert.equal(r.error, undefined);
          assert.deepEqual(r.value.calls, [[null, undefined]]);
          assert.notEqual(r.value.id, session.id);
          assertSetsSid(r.setCookies, r.value.id);
          await assertGone(app, session.id);
          assert.deepEqual((await readWith(app, jar.header())).all, { a: 1, b: 2 });
          if (isRedis) assert.deepEqual(await redis.db.sessionData(key(r.value.id)), { a: '1', b: '2' });
        });

        test('regenerate() in the request that created the session sends one sid cookie, for the final id', async () => {
          const jar = new CookieJar();
          const r = await app.run(
            async (s) => {
              const first = s.id;
              await s.set('a', 1);
              await s.regenerate();
              return { first, id: s.id };
            },
            { jar }
          );
          assert.equal(r.error, undefined);
          assert.notEqual(r.value.id, r.value.first);
          assertSetsSid(r.setCookies, r.value.id);
          await assertGone(app, r.value.first);
          assert.deepEqual((await readWith(app, jar.header())).all, { a: 1 });
        });
      });
    }

    describe('strict ids, invalidate(), incr(), getAll()', () => {
      let app;
      before(async () => {
        app = await startSessionApp(express, storeOptions());
      });
      after(() => app.close());

      test('a visitor keeps one id and gets no further cookie, also when a later request writes first', async () => {
        const jar = new CookieJar();
        const first = await app.run((s) => s.get('x'), { jar });
        assert.equal(first.session.isNew, true);
        assertSetsSid(first.setCookies, first.session.id);
        const id = first.session.id;
        for (let i = 0; i < 3; i++) {
          const r = await app.run(async (s) => ({ x: await s.get('x'), all: await s.getAll() }), { jar });
          assert.equal(r.session.id, id, 'the same id while nothing is written');
          assert.equal(r.session.isNew, false);
          assert.deepEqual(r.value, { x: null, all: {} });
          assert.deepEqual(cookiesNamed(r.setCookies), [], 'no Set-Cookie while nothing is written');
        }
        if (isRedis) assert.deepEqual(await redis.db.sessionData(key(id)), {}, 'only the record of its creation');

        const written = await app.run(
          async (s) => {
            await s.set('x', 1);
            return { id: s.id, isNew: s.isNew };
          },
          { jar }
        );
        assert.deepEqual(written.value, { id, isNew: false }, 'the first write lands under the issued id');
        assert.deepEqual(cookiesNamed(written.setCookies), []);
        const next = await readWith(app, jar.header());
        assert.deepEqual([next.id, next.isNew, next.all], [id, false, { x: 1 }]);
        assert.deepEqual(cookiesNamed(next.setCookies), []);
      });

      test('a correctly signed id that was never written is not created by set, mset or incr', async () => {
        const methods = {
          set: (s) => s.set('x', 1),
          mset: (s) => s.mset({ x: 1 }),
          incr: (s) => s.incr('x'),
        };
        for (const [name, write] of Object.entries(methods)) {
          const forgedId = randomBytes(32).toString('base64url');
          assert.match(forgedId, NEW_ID);
          const r = await app.run(
            async (s) => {
              const before = s.id;
              await write(s);
              return { before, id: s.id, isNew: s.isNew };
            },
            { cookie: signedSidCookie(forgedId, SECRET) }
          );
          assert.equal(r.error, undefined, name);
          assert.equal(r.value.before, forgedId, `${name}: the signed id is accepted`);
          assert.notEqual(r.value.id, forgedId, `${name}: the write goes to a fresh id`);
          assert.equal(r.value.isNew, true, name);
          assertSetsSid(r.setCookies, r.value.id, `${name}:`);
          await assertGone(app, forgedId, `${name}:`);
          assert.deepEqual((await readWith(app, cookieHeader(r.setCookies))).all, { x: 1 }, name);
        }
      });

      test('an invalidated id is not revived by a write with its cookie; removing from it moves nowhere', async () => {
        const jar = new CookieJar();
        const { session } = await app.run((s) => s.set('user', 'ann'), { jar });
        const oldCookie = jar.header();
        const logout = await app.run((s) => s.invalidate(), { jar });
        assert.ok(cookiesNamed(logout.setCookies).every(isClearing));
        await assertGone(app, session.id);

        const removed = await app.run(
          async (s) => {
            await s.remove('user');
            return s.id;
          },
          { cookie: oldCookie }
        );
        assert.equal(removed.error, undefined);
        assert.equal(removed.value, session.id, 'nothing to write: no fresh id');
        assert.deepEqual(cookiesNamed(removed.setCookies), []);

        const counted = await app.run(async (s) => ({ n: await s.incr('n'), id: s.id, isNew: s.isNew }), { cookie: oldCookie });
        assert.equal(counted.error, undefined);
        assert.equal(counted.value.n, 1, 'incr starts from nothing in the fresh session');
        assert.notEqual(counted.value.id, session.id);
        assert.equal(counted.value.isNew, true);
        assertSetsSid(counted.setCookies, counted.value.id);
        await assertGone(app, session.id);
        assert.deepEqual((await readWith(app, cookieHeader(counted.setCookies))).all, { n: 1 });
      });

      // On memory, the `tti: 1` test below covers expiry.
      if (isRedis)
        test('an expired id is not revived by a write with its cookie', async () => {
          const jar = new CookieJar();
          const { session } = await app.run((s) => s.set('user', 'ann'), { jar });
          await redis.db.command('PEXPIRE', key(session.id), 1);
          await delay(20);
          assert.equal(await redis.db.exists(key(session.id)), false, 'expired');
          const r = await app.run(
            async (s) => {
              await s.set('user', 'bob');
              return s.id;
            },
            { jar }
          );
          assert.notEqual(r.value, session.id);
          assertSetsSid(r.setCookies, r.value);
          assert.equal(await redis.db.exists(key(session.id)), false, 'not revived');
          assert.deepEqual(await redis.db.sessionData(key(r.value)), { user: '"bob"' });
        });

      test('no resurrection: 200 invalidate() / set() races on one cookie leave none of the old ids stored', async (t) => {
        const PAIRS = 200;
        let moved = 0;
        const pairs = await pool(PAIRS, 8, async (i) => {
          const created = await app.run((s) => s.mset({ user: `u${i}`, role: 'admin' }));
          assert.equal(created.error, undefined);
          const oldId = created.session.id;
          const cookie = cookieHeader(created.setCookies);

          // Both handlers start their call at the same moment (a barrier), in
          // varying orders, so invalidate's DEL and the strict write meet in
          // one pipeline or in successive ones, either way round; every 4th
          // pair is left to the plain HTTP race.
          let arrived = 0;
          let release;
          const barrier = new Promise((resolve) => (release = resolve));
          const meet = async (late) => {
            if (i % 4 === 3) return;
            if (++arrived === 2) release();
            await barrier;
            if (late) await new Promise((resolve) => setImmediate(resolve));
          };
          const [logout, write] = await Promise.all([
            app.run(
              async (s) => {
                await meet(i % 4 === 2);
                await s.invalidate();
              },
              { cookie }
            ),
            app.run(
              async (s) => {
                await meet(i % 4 === 1);
                await s.set('x', 1);
                return { id: s.id, isNew: s.isNew };
              },
              { cookie }
            ),
          ]);
          assert.equal(logout.error, undefined);
          assert.equal(write.error, undefined);
          const clearing = cookiesNamed(logout.setCookies);
          assert.equal(clearing.length, 1);
          assert.ok(isClearing(clearing[0]));
          if (write.value.id !== oldId) {
            moved++;
            assert.equal(write.value.isNew, true);
            assertSetsSid(write.setCookies, write.value.id, 'the moved write:');
          } else {
            assert.deepEqual(cookiesNamed(write.setCookies), [], 'a write before the DEL keeps the id');
          }
          return { oldId, cookie, write };
        });
        t.diagnostic(`${moved} of ${PAIRS} writes came after the DEL and moved to a fresh id`);

        if (isRedis) {
          const survivors = [];
          for (const { oldId } of pairs) if (await redis.db.exists(key(oldId))) survivors.push(oldId);
          assert.deepEqual(survivors, [], 'old ids with a key in Redis');
          for (const { oldId, write } of pairs) {
            if (write.value.id !== oldId) assert.deepEqual(await redis.db.sessionData(key(write.value.id)), { x: '1' });
          }
        }
        const reads = await pool(PAIRS, 8, (i) => readWith(app, pairs[i].cookie));
        const nonEmpty = reads.map((r, i) => [pairs[i].oldId, r.all]).filter(([, all]) => Object.keys(all).length > 0);
        assert.deepEqual(nonEmpty, [], 'old cookies that read a non-empty session');
      });

      for (const [variant, fn] of Object.entries({
        'await invalidate(); await set()': async (s) => {
          await s.invalidate();
          await s.set('x', 1);
        },
        'invalidate() not awaited; await set()': async (s) => {
          s.invalidate();
          await s.set('x', 1);
        },
        'await invalidate(); await incr()': async (s) => {
          await s.invalidate();
          assert.equal(await s.incr('x'), 1);
        },
      })) {
        test(`${variant} in one request: the old key stays gone, the write gets a fresh id and one sid cookie`, async () => {
          const jar = new CookieJar();
          const { session } = await app.run((s) => s.mset({ user: 'ann', role: 'admin' }), { jar });
          const oldCookie = jar.header();
          const r = await app.run(
            async (s) => {
              await fn(s);
              return { id: s.id, isNew: s.isNew };
            },
            { jar }
          );
          assert.equal(r.error, undefined);
          assert.notEqual(r.value.id, session.id);
          assert.equal(r.value.isNew, true);
          assertSetsSid(r.setCookies, r.value.id, 'the fresh cookie replaces the clearing one:');
          await assertGone(app, session.id);
          const next = await readWith(app, jar.header());
          assert.deepEqual([next.id, next.all], [r.value.id, { x: 1 }], 'the fresh session holds only the new write');
          assert.deepEqual((await readWith(app, oldCookie)).all, {});
          if (isRedis) assert.deepEqual(await redis.db.sessionData(key(r.value.id)), { x: '1' });
        });
      }

      test('invalidate() then set() in the request that created the session: one sid cookie, for the written id', async () => {
        const jar = new CookieJar();
        const r = await app.run(
          async (s) => {
            const first = s.id;
            await s.invalidate();
            await s.set('x', 1);
            return { first, id: s.id };
          },
          { jar }
        );
        assert.equal(r.error, undefined);
        assertSetsSid(r.setCookies, r.value.id);
        await assertGone(app, r.value.first);
        assert.deepEqual((await readWith(app, jar.header())).all, { x: 1 });
      });

      test('incr() resolves the new integer, stores a JSON integer, and takes callbacks', async () => {
        const jar = new CookieJar();
        const first = await app.run(async (s) => [await s.incr('n'), await s.incr('n', 2)], { jar });
        assert.equal(first.error, undefined);
        assert.deepEqual(first.value, [1, 3]);
        const id = first.session.id;
        if (isRedis) {
          assert.equal(await redis.db.command('HGET', key(id), 'n'), '3');
          const ttl = await redis.db.ttl(key(id));
          assert.ok(ttl > 290 && ttl <= 300, `TTL ${ttl}`);
        }

        const second = await app.run(
          async (s) => {
            const read = await s.get('n');
            const negative = await s.incr('n', -5);
            const calls = [];
            const p1 = s.incr('n', (...args) => calls.push(['incr(key, cb)', ...args]));
            assert.ok(p1 instanceof Promise);
            const resolved1 = await p1;
            const resolved2 = await s.incr('n', 4, (...args) => calls.push(['incr(key, by, cb)', ...args]));
            await delay(5);
            return { read, negative, resolved: [resolved1, resolved2], calls, final: await s.get('n'), id: s.id };
          },
          { jar }
        );
        assert.equal(second.error, undefined);
        assert.equal(second.value.id, id, 'incr on a live session keeps its id');
        assert.equal(second.value.read, 3);
        assert.equal(typeof second.value.read, 'number');
        assert.equal(second.value.negative, -2);
        assert.deepEqual(second.value.resolved, [-1, 3]);
        assert.deepEqual(second.value.calls, [
          ['incr(key, cb)', null, -1],
          ['incr(key, by, cb)', null, 3],
        ]);
        assert.equal(second.value.final, 3);
        assert.deepEqual(cookiesNamed(second.setCookies), []);
        if (isRedis) assert.deepEqual(await redis.db.sessionData(key(id)), { n: '3' });
        assert.deepEqual((await readWith(app, jar.header())).all, { n: 3 });
      });

      test('incr() on a field that is not an integer rejects with ERR_SESSION_ARGUMENT and changes nothing', async () => {
        const values = { s: 'text', f: 1.5, b: true, o: { n: 1 }, q: '5' };
        const jar = new CookieJar();
        // In the creating request (a MULTI on Redis) and in a later one (the strict script).
        const results = [];
        for (const phase of ['creating request', 'later request']) {
          const r = await app.run(
            async (s) => {
              if (phase === 'creating request') await s.mset(values);
              const out = {};
              for (const field of Object.keys(values)) {
                out[field] = await s.incr(field).then(
                  (v) => ({ resolved: v }),
                  (err) => ({ code: err.code })
                );
              }
              out.callback = await new Promise((resolve) => s.incr('s', 1, (err, v) => resolve([err && err.code, v])));
              return { out, all: await s.getAll(), id: s.id };
            },
            { jar }
          );
          assert.equal(r.error, undefined, phase);
          results.push(r.value.id);
          const expected = Object.fromEntries(Object.keys(values).map((f) => [f, { code: 'ERR_SESSION_ARGUMENT' }]));
          assert.deepEqual(r.value.out, { ...expected, callback: ['ERR_SESSION_ARGUMENT', undefined] }, phase);
          assert.deepEqual(r.value.all, values, `${phase}: nothing changed`);
          if (isRedis) {
            assert.deepEqual(
              await redis.db.sessionData(key(r.value.id)),
              Object.fromEntries(Object.entries(values).map(([k, v]) => [k, JSON.stringify(v)])),
              phase
            );
          }
        }
        assert.equal(results[0], results[1], 'a failed incr does not move the session');
      });

      test('incr() with a non-safe-integer increment rejects with ERR_SESSION_ARGUMENT and writes nothing', async () => {
        const bad = [1.5, '2', NaN, Infinity, 2 ** 53, null, 1n];
        const jar = new CookieJar();
        const attempt = async (s) => {
          const results = [];
          for (const by of bad)
            results.push(
              await s.incr('n', by).then(
                (v) => ({ resolved: v }),
                (err) => ({ code: err.code })
              )
            );
          return results;
        };
        const expected = bad.map(() => ({ code: 'ERR_SESSION_ARGUMENT' }));

        // A new session: nothing is stored beside the record of its creation.
        const fresh = await app.run(async (s) => ({ results: await attempt(s), all: await s.getAll() }), { jar });
        assert.equal(fresh.error, undefined);
        assert.deepEqual(fresh.value.results, expected);
        assert.deepEqual(fresh.value.all, {});
        if (isRedis) assert.deepEqual(await redis.db.sessionData(key(fresh.session.id)), {}, 'no field written');

        // An existing session: the field keeps its value.
        const jar2 = new CookieJar();
        const { session } = await app.run((s) => s.set('n', 7), { jar: jar2 });
        const existing = await app.run(async (s) => ({ results: await attempt(s), all: await s.getAll() }), { jar: jar2 });
        assert.deepEqual(existing.value.results, expected);
        assert.deepEqual(existing.value.all, { n: 7 });
        if (isRedis) assert.deepEqual(await redis.db.sessionData(key(session.id)), { n: '7' });
      });

      test('getAll() returns every field decoded, in the writing request and in later ones', async () => {
        const values = { str: 'hé', num: -4.25, int: 12, obj: { a: [1, { b: null }] }, arr: [], nul: null, no: false, empty: '' };
        const jar = new CookieJar();
        const first = await app.run(
          async (s) => {
            const before = await s.getAll();
            await s.mset(values);
            await s.incr('count', 5);
            return { before, after: await s.getAll() };
          },
          { jar }
        );
        assert.equal(first.error, undefined);
        assert.deepEqual(first.value.before, {});
        assert.deepEqual(first.value.after, { ...values, count: 5 });
        const later = await readWith(app, jar.header());
        assert.deepEqual(later.all, { ...values, count: 5 });
        assert.equal(later.id, first.session.id);
      });
    });

    if (!isRedis) {
      test('memory: an id expired after tti is not revived by a write with its cookie', async () => {
        await withApp(storeOptions({ tti: 1 }), async (app) => {
          const jar = new CookieJar();
          const { session } = await app.run((s) => s.set('user', 'ann'), { jar });
          await delay(1100);
          const r = await app.run(
            async (s) => {
              const before = await s.getAll();
              await s.set('user', 'bob');
              return { before, id: s.id, isNew: s.isNew };
            },
            { jar }
          );
          assert.equal(r.error, undefined);
          assert.deepEqual(r.value.before, {}, 'expired');
          assert.notEqual(r.value.id, session.id);
          assert.equal(r.value.isNew, true);
          assertSetsSid(r.setCookies, r.value.id);
          await assertGone(app, session.id);
          assert.deepEqual((await readWith(app, jar.header())).all, { user: 'bob' });
        });
      });
    }
  });
}
