'use strict';

// What an existing Express app meets when it adopts alt-session: lazy
// sessions (no cookie and no key until the first write), strict options
// (a misspelt or express-session option fails at construction, naming what
// was meant), session.legacyIds: false after a rollout from 0.0.1, and a
// login() that a planted, regenerated cookie cannot block. Over real HTTP,
// on Redis and in memory.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const express = require('express');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { startSessionApp } = require('./helpers/session-server');
const { CookieJar, cookiesNamed, signedSidCookie } = require('./helpers/http');

const SECRET = 'adoption';
const redis = useRedis();

/** Resolves what a promise settled with: `['ok', value]` or `['error', code]`. */
const outcome = (promise) =>
  promise.then(
    (value) => ['ok', value],
    (err) => ['error', err.code]
  );

/** An id of alt-session 0.0.1's shape: base64 of a sha256, then 8 alphanumerics. */
const legacyId = () => crypto.createHash('sha256').update(crypto.randomBytes(16)).digest('base64') + crypto.randomBytes(6).toString('hex').slice(0, 8);

for (const storeName of ['Redis', 'memory']) {
  const store = () => (storeName === 'Redis' ? { redis: redis.server } : { mock: true });
  /**
   * Whether the store holds a session under `id`: on Redis its key; in memory, whether a
   * write with its cookie lands under it (an id never stored is not creatable: the write
   * would go to a fresh id).
   */
  const stored = async (app, id) => {
    if (storeName === 'Redis') return (await redis.db.exists(`session:${id}`)) === true;
    const r = await app.run((s) => s.set('probe', 1).then(() => s.id), { cookie: signedSidCookie(id, SECRET) });
    return r.value === id;
  };

  describe(`${storeName}: session.lazy`, () => {
    let app;
    before(async () => {
      app = await startSessionApp(express, { ...store(), session: { secret: SECRET, lazy: true } });
    });
    after(() => app.close());

    test('a request that writes nothing gets no cookie and stores nothing; req.session.id is the id a first write would issue', async () => {
      const before = storeName === 'Redis' ? await redis.db.command('DBSIZE') : 0;
      const r = await app.run(async (s) => ({ id: s.id, isNew: s.isNew, read: await s.get('a'), all: await s.getAll() }));
      assert.equal(r.status, 200);
      assert.deepEqual(cookiesNamed(r.setCookies), [], 'no Set-Cookie');
      assert.equal(r.value.isNew, true);
      assert.match(r.value.id, /^[A-Za-z0-9_-]{20,}$/);
      assert.deepEqual([r.value.read, r.value.all], [null, {}]);
      if (storeName === 'Redis') assert.equal(await redis.db.command('DBSIZE'), before, 'no key');
      // The id was never stored: a write with a cookie for it goes to a fresh session.
      const w = await app.run((s) => s.set('a', 1).then(() => s.id), { cookie: signedSidCookie(r.value.id, SECRET) });
      assert.notEqual(w.value, r.value.id, 'an id never stored is not creatable');
    });

    test('the first write sends the cookie and creates the session; later requests, and parallel writes, land in it', async () => {
      const jar = new CookieJar();
      const first = await app.run(async (s) => (await s.set('a', 1), s.id), { jar });
      assert.equal(cookiesNamed(first.setCookies).length, 1, 'one Set-Cookie, with the first write');
      const writes = await Promise.all(Array.from({ length: 10 }, (_, i) => app.run((s) => s.set(`k${i}`, i).then(() => s.id), { jar })));
      assert.ok(writes.every((w) => w.value === first.value && cookiesNamed(w.setCookies).length === 0));
      const all = (await app.run((s) => s.getAll(), { jar })).value;
      assert.equal(Object.keys(all).length, 11);
      assert.ok(await stored(app, first.value));
    });

    test('incr(), mset(), regenerate() and login() send the cookie too; remove() of a session never stored sends nothing', async () => {
      for (const first of [(s) => s.incr('n'), (s) => s.mset({ a: 1 }), (s) => s.regenerate(), (s) => s.login('lazy-user')]) {
        const jar = new CookieJar();
        const r = await app.run(async (s) => (await first(s), s.id), { jar });
        assert.equal(r.error, undefined, r.error && r.error.message);
        assert.equal(cookiesNamed(r.setCookies).length, 1, String(first));
        assert.ok(await stored(app, r.value), String(first));
      }
      const removed = await app.run((s) => s.remove('a').then(() => s.id));
      assert.equal(removed.error, undefined);
      assert.deepEqual(cookiesNamed(removed.setCookies), []);
      assert.equal(await stored(app, removed.value), false);
    });

    test('a first write after the response was sent fails with ERR_SESSION_HEADERS_SENT and stores nothing', async () => {
      const r = await app.run(async (s, req, res) => {
        res.end('sent');
        return { result: await outcome(s.set('a', 1)), id: s.id };
      });
      assert.deepEqual(r.value.result, ['error', 'ERR_SESSION_HEADERS_SENT']);
      assert.equal(await stored(app, r.value.id), false);
    });
  });

  describe(`${storeName}: session.legacyIds`, () => {
    test('on (the default, during a rollout from 0.0.1): a write creates the session of a 0.0.1-shaped id; off: the id is unknown, and the write goes to a fresh session', async () => {
      for (const legacyIds of [undefined, false]) {
        const app = await startSessionApp(express, { ...store(), session: { secret: SECRET, legacyIds } });
        try {
          const id = legacyId();
          const r = await app.run((s) => s.set('a', 1).then(() => s.id), { cookie: signedSidCookie(id, SECRET) });
          assert.equal(r.error, undefined);
          if (legacyIds === undefined) {
            assert.equal(r.value, id, 'the 0.0.1 id keeps its session');
            assert.deepEqual(cookiesNamed(r.setCookies), []);
          } else {
            assert.notEqual(r.value, id, 'a fresh id');
            assert.equal(cookiesNamed(r.setCookies).length, 1, 'with its cookie');
            assert.equal(await stored(app, id), false, 'nothing under the 0.0.1 id');
          }
        } finally {
          await app.close();
        }
      }
    });

    test('off: a live session under a 0.0.1 id keeps its id and data', async () => {
      const id = legacyId();
      const during = await startSessionApp(express, { ...store(), session: { secret: SECRET } });
      const after = storeName === 'Redis' ? await startSessionApp(express, { ...store(), session: { secret: SECRET, legacyIds: false } }) : during;
      try {
        await during.run((s) => s.set('cart', [1]), { cookie: signedSidCookie(id, SECRET) });
        // In memory the store is the app's own: the same app stands for "after".
        const r = await after.run(async (s) => ({ id: s.id, all: await s.getAll() }), { cookie: signedSidCookie(id, SECRET) });
        assert.deepEqual(r.value, { id, all: { cart: [1] } });
      } finally {
        await during.close();
        if (after !== during) await after.close();
      }
    });
  });

  describe(`${storeName}: login() from a cookie someone regenerated`, () => {
    let app;
    before(async () => {
      app = await startSessionApp(express, { ...store(), session: { secret: SECRET } });
    });
    after(() => app.close());

    test('a planted cookie its planter regenerated does not block the victim: login() signs in on a fresh session', async () => {
      const attacker = new CookieJar();
      await app.run((s) => s.set('x', 1), { jar: attacker });
      const planted = attacker.header();
      await app.run((s) => s.regenerate(), { jar: attacker }); // the planted id now has a move marker
      const victim = await app.run(async (s) => ({ result: await outcome(s.login('victim')), id: s.id, user: s.userId }), { cookie: planted });
      assert.deepEqual(victim.value.result, ['ok', undefined]);
      assert.equal(victim.value.user, 'victim');
      assert.equal(cookiesNamed(victim.setCookies).length, 1);
      const ids = (await app.mw.sessions('victim')).map((s) => s.id);
      assert.deepEqual(ids, [victim.value.id], 'the victim is listed under the fresh id alone');
      const attackerView = await app.run((s) => s.userId, { jar: attacker });
      assert.equal(attackerView.value, null, 'the planter is not signed in');
    });
  });
}

describe('strict options', () => {
  const refused = (options, pattern) =>
    assert.throws(
      () => altSession.mock(options),
      (err) => err.code === 'ERR_SESSION_CONFIG' && pattern.test(err.message),
      JSON.stringify(options)
    );

  test('a misspelt name fails at construction, naming the option meant', () => {
    refused({ session: { secret: 's', scure: true } }, /unknown option session\.scure: did you mean session\.secure\?/);
    refused({ redis: { hots: 'x' } }, /redis\.hots: did you mean redis\.host\?/);
    refused(
      { redis: { sentinel: { name: 'm', nodes: [{ host: 'h', prot: 1 }] } } },
      /redis\.sentinel\.nodes\[\]\.prot: did you mean redis\.sentinel\.nodes\[\]\.port\?/
    );
    refused({ redis: { tls: { rejectUnauthorised: false } } }, /redis\.tls\.rejectUnauthorised: did you mean redis\.tls\.rejectUnauthorized\?/);
  });

  test('a name at the wrong level points at its level', () => {
    refused({ secret: 's' }, /unknown option secret: did you mean session\.secret\?/);
    refused({ session: { port: 6380 } }, /did you mean redis\.port\?/);
  });

  test("express-session's options say what stands for them here", () => {
    refused(
      { session: { secret: 's', cookie: { secure: true } } },
      /session\.cookie \(an option of express-session, which require\('alt-session\/express-session'\) takes; here the cookie's attributes are session\.secure/
    );
    // Each unknown name at once, each with what stands for it.
    refused(
      { secret: 'keyboard cat', resave: false, saveUninitialized: false },
      /^unknown options resave \(.*\); saveUninitialized \(.*session\.lazy.*\); secret: did you mean session\.secret\?$/
    );
    refused({ saveUninitialized: false }, /saveUninitialized .*session\.lazy: true/);
    refused({ store: {} }, /store .*express-session/);
  });

  test('every option README.md documents is accepted', () => {
    const mw = altSession.mock({
      redis: { host: 'h', port: 6380, username: 'u', password: 'p', connectTimeout: 500, commandTimeout: 900, waitReplicas: 0, waitTimeout: 100 },
      session: {
        secret: ['a', 'b'],
        name: 'sid',
        path: '/',
        domain: 'example.com',
        secure: 'auto',
        sameSite: 'lax',
        httpOnly: true,
        tti: 60,
        prefix: 'p',
        dbIndex: 1,
        maxLifetime: 3600,
        maxValueBytes: 1000,
        maxFields: 10,
        maxSessionsPerUser: 5,
        awaitTouch: false,
        lazy: true,
        legacyIds: false,
      },
    });
    return mw.close();
  });
});

describe('served through outages (Redis down, slow)', () => {
  const { startRedis } = require('../__test__/servers/redis');
  let server;
  let app;
  let strict;
  before(async () => {
    server = await startRedis();
    app = await startSessionApp(express, { redis: { ...server.options, commandTimeout: 2000, connectTimeout: 500 }, session: { secret: SECRET } });
    strict = await startSessionApp(express, {
      redis: { ...server.options, commandTimeout: 2000, connectTimeout: 500 },
      session: { secret: SECRET, refreshErrors: 'next' },
    });
  });
  after(async () => {
    await Promise.all([app.close(), strict.close()]);
    await server.stop();
  });

  test('Redis down: a route that calls no session method answers for new, returning and signed-in visitors; a signed-in one reads as signed out; refreshErrors: "next" passes the error on', async () => {
    const returning = new CookieJar();
    await app.run((s) => s.set('a', 1), { jar: returning });
    const signedIn = new CookieJar();
    await app.run((s) => s.login('ann'), { jar: signedIn });
    await server.stop();
    try {
      for (const [who, jar] of [
        ['new', undefined],
        ['returning', returning],
        ['signed-in', signedIn],
      ]) {
        const r = await app.run((s) => ({ userId: s.userId }), { jar });
        assert.equal(r.status, 200, `${who}: ${r.middlewareError && r.middlewareError.code}`);
        assert.equal(r.value.userId, null, `${who} reads as signed out`);
        const failing = await app.run((s) => outcome(s.get('a')), { jar });
        assert.ok(['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT'].includes(failing.value[1]), `${who}: a call that needs Redis fails: ${failing.value}`);
        const passedOn = await strict.run(() => {}, { jar });
        assert.equal(passedOn.status, 500, who);
        assert.ok(['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT'].includes(passedOn.middlewareError.code), who);
      }
    } finally {
      await server.start();
    }
  });

  test('Redis slow (SIGSTOP): once a call has waited 100 ms, later requests do not wait for their refresh', async (t) => {
    const jar = new CookieJar();
    await app.run((s) => s.set('a', 1), { jar });
    process.kill(server.pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const first = app.run(() => {}, { jar }); // held: its refresh was sent before Redis was known to be slow
      await new Promise((resolve) => setTimeout(resolve, 300));
      const later = await Promise.all(Array.from({ length: 5 }, () => app.run(() => Date.now(), { jar })));
      for (const r of later) assert.equal(r.status, 200);
      const waited = Math.max(...later.map((r) => r.value)) - started - 300;
      t.diagnostic(`later requests answered within ${waited} ms of being sent (commandTimeout 2000 ms)`);
      assert.ok(waited < 1000, `${waited} ms`);
      assert.equal((await first).status, 200, 'the held one answers too, once its refresh timed out');
    } finally {
      process.kill(server.pid, 'SIGCONT');
    }
  });
});
