'use strict';

// Every session of a user: login() binds a session to a user, sessions()
// lists the live ones, revoke() ends them (all, or all but one), logout()
// ends one. Over real HTTP, on Redis and in memory; clients are cookie jars.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { useRedis } = require('./helpers/fixtures');
const { startSessionApp } = require('./helpers/session-server');
const { CookieJar, signedSidCookie } = require('./helpers/http');

const SECRET = 'users';
const redis = useRedis();

/** Resolves what a promise settled with: `['ok', value]` or `['error', code]`. */
const outcome = (promise) =>
  promise.then(
    (value) => ['ok', value],
    (err) => ['error', err.code]
  );

for (const storeName of ['Redis', 'memory']) {
  describe(`${storeName}: sessions per user`, () => {
    let app;
    before(async () => {
      const store = storeName === 'Redis' ? { redis: redis.server } : { mock: true };
      app = await startSessionApp(express, { ...store, session: { secret: SECRET } });
    });
    after(() => app.close());

    /** A client (cookie jar) that browsed, put something in its cart and signed in as `user`. */
    async function signedIn(user, meta) {
      const jar = new CookieJar();
      await app.run((s) => s.set('cart', [1]), { jar });
      const r = await app.run((s) => s.login(user, { meta }), { jar });
      assert.equal(r.error, undefined);
      return { jar, id: r.session.id };
    }

    /** Whether the store still holds the session `id` (Redis: its key; memory: its data). */
    async function stored(id) {
      if (storeName === 'Redis') return (await redis.db.command('EXISTS', `session:${id}`)) === 1;
      const { value } = await app.run((s) => s.getAll(), { cookie: signedSidCookie(id, SECRET) });
      return Object.keys(value).length > 0;
    }

    test('login() keeps the data under a new id and binds the user, on every later request', async () => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.set('cart', [1]), { jar });
      const r = await app.run(
        async (s) => {
          await s.login('ann', { meta: { device: 'laptop' } });
          return s.userId;
        },
        { jar }
      );
      assert.equal(r.value, 'ann');
      assert.notEqual(r.session.id, first.session.id, 'a new id against fixation');
      assert.equal(r.session.id.length, 44);
      const later = await app.run(async (s) => ({ user: s.userId, all: await s.getAll() }), { jar });
      assert.deepEqual(later.value, { user: 'ann', all: { cart: [1] } });
      assert.equal(later.session.id, r.session.id);
      assert.equal(await stored(first.session.id), false, 'the old id is dead');
      const anonymous = await app.run((s) => s.userId, { jar: new CookieJar() });
      assert.equal(anonymous.value, null);
    });

    test('5 clients sign in: sessions() lists 5 with their meta; revoke(except) leaves one, the others start signed out', async () => {
      const user = `u5-${storeName}`;
      const clients = [];
      for (let i = 0; i < 5; i++) clients.push(await signedIn(user, { device: `client ${i}` }));
      const listed = await app.mw.sessions(user);
      assert.equal(listed.length, 5);
      assert.deepEqual(new Set(listed.map((s) => s.id)), new Set(clients.map((c) => c.id)));
      for (const entry of listed) {
        const i = clients.findIndex((c) => c.id === entry.id);
        assert.deepEqual(entry.meta, { device: `client ${i}` });
        assert.ok(entry.createdAt > Date.now() - 60000 && entry.lastSeenAt >= entry.createdAt, JSON.stringify(entry));
      }
      // lastSeenAt moves with each request of the session, and orders the list.
      await new Promise((resolve) => setTimeout(resolve, 5));
      await app.run(() => {}, { jar: clients[2].jar });
      const relisted = await app.mw.sessions(user);
      assert.equal(relisted[0].id, clients[2].id);
      assert.ok(relisted[0].lastSeenAt > listed.find((s) => s.id === clients[2].id).lastSeenAt);

      const current = clients[0];
      assert.equal(await app.mw.revoke(user, { except: current.id }), 4);
      assert.deepEqual(
        (await app.mw.sessions(user)).map((s) => s.id),
        [current.id]
      );
      for (const client of clients.slice(1)) {
        assert.equal(await stored(client.id), false);
        const next = await app.run(async (s) => ({ user: s.userId, all: await s.getAll() }), { jar: client.jar });
        assert.deepEqual(next.value, { user: null, all: {} });
        // A write starts a fresh, signed-out session with a fresh cookie; the revoked id stays dead.
        const write = await app.run(async (s) => (await s.set('x', 1), s.userId), { jar: client.jar });
        assert.equal(write.value, null);
        assert.notEqual(write.session.id, client.id);
        assert.equal(await stored(client.id), false);
      }
      const kept = await app.run(async (s) => ({ user: s.userId, all: await s.getAll() }), { jar: current.jar });
      assert.deepEqual(kept.value, { user, all: { cart: [1] } });
      assert.equal(await app.mw.revoke(user), 1);
      assert.deepEqual(await app.mw.sessions(user), []);
    });

    test('100 concurrent writes racing a revoke leave no revoked session alive', async () => {
      const user = `race-${storeName}`;
      const clients = [];
      for (let i = 0; i < 10; i++) clients.push(await signedIn(user));
      const writes = Array.from({ length: 100 }, (_, i) => app.run((s) => outcome(s.incr('n')), { jar: clients[i % 10].jar }));
      const revoked = app.mw.revoke(user);
      const results = await Promise.all(writes);
      assert.equal(await revoked, 10);
      for (const client of clients) assert.equal(await stored(client.id), false, `revoked session ${client.id} is alive`);
      assert.deepEqual(await app.mw.sessions(user), []);
      // Every write landed before the revoke or moved to a fresh, signed-out session.
      const failed = results.filter((r) => r.value[0] !== 'ok');
      assert.deepEqual(
        failed.map((r) => r.value),
        []
      );
      const moved = results.filter((r) => !clients.some((c) => c.id === r.session.id));
      for (const r of moved) assert.equal(r.session.userId, null);
    });

    test('logout() ends the session and takes it off the list; regenerate() keeps it signed in', async () => {
      const user = `out-${storeName}`;
      const a = await signedIn(user);
      const b = await signedIn(user, { device: 'b' });
      const regenerated = await app.run(async (s) => (await s.regenerate(), s.userId), { jar: b.jar });
      assert.equal(regenerated.value, user);
      const after = await app.run((s) => s.userId, { jar: b.jar });
      assert.equal(after.value, user);
      const listed = await app.mw.sessions(user);
      assert.deepEqual(new Set(listed.map((s) => s.id)), new Set([a.id, after.session.id]));
      assert.deepEqual(listed.find((s) => s.id === after.session.id).meta, { device: 'b' }, 'the meta stays');
      const out = await app.run(async (s) => (await s.logout(), s.userId), { jar: a.jar });
      assert.equal(out.value, null);
      assert.deepEqual(
        (await app.mw.sessions(user)).map((s) => s.id),
        [after.session.id]
      );
      const next = await app.run((s) => s.userId, { jar: a.jar });
      assert.equal(next.value, null);
    });

    test('a session revoked during its request does not come back signed in through regenerate()', async () => {
      const user = `regen-${storeName}`;
      const { jar } = await signedIn(user);
      const r = await app.run(
        async (s) => {
          const before = s.userId;
          await app.mw.revoke(user);
          await s.regenerate();
          return { before, after: s.userId };
        },
        { jar }
      );
      assert.deepEqual(r.value, { before: user, after: null });
      assert.deepEqual(await app.mw.sessions(user), []);
      assert.equal((await app.run((s) => s.userId, { jar })).value, null);
    });

    test('signing in as another user moves the session from one list to the other', async () => {
      const jar = new CookieJar();
      await app.run((s) => s.login(`first-${storeName}`), { jar });
      const r = await app.run(async (s) => (await s.login(`second-${storeName}`), s.userId), { jar });
      assert.equal(r.value, `second-${storeName}`);
      assert.deepEqual(await app.mw.sessions(`first-${storeName}`), []);
      assert.deepEqual(
        (await app.mw.sessions(`second-${storeName}`)).map((s) => s.id),
        [r.session.id]
      );
    });

    test('bad input fails with a code and changes nothing', async () => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.set('k', 1), { jar });
      const r = await app.run(
        async (s) => ({
          empty: await outcome(s.login('')),
          object: await outcome(s.login({ id: 1 })),
          fraction: await outcome(s.login(1.5)),
          long: await outcome(s.login('u'.repeat(257))),
          meta: await outcome(s.login('ann', { meta: 'x'.repeat(1100 * 1024) })),
          id: s.id,
          user: s.userId,
        }),
        { jar }
      );
      assert.deepEqual(r.value, {
        empty: ['error', 'ERR_SESSION_ARGUMENT'],
        object: ['error', 'ERR_SESSION_ARGUMENT'],
        fraction: ['error', 'ERR_SESSION_ARGUMENT'],
        long: ['error', 'ERR_SESSION_ARGUMENT'],
        meta: ['error', 'ERR_SESSION_TOO_LARGE'],
        id: first.session.id,
        user: null,
      });
      assert.deepEqual(await outcome(app.mw.sessions(null)), ['error', 'ERR_SESSION_ARGUMENT']);
      assert.deepEqual(await outcome(app.mw.revoke('ann', { except: 5 })), ['error', 'ERR_SESSION_ARGUMENT']);
      assert.deepEqual(await app.mw.sessions(42), []);
      const numeric = await app.run(async (s) => (await s.login(42), s.userId), { jar });
      assert.equal(numeric.value, '42');
      assert.equal((await app.mw.sessions('42')).length, 1);
    });

    test('reserved fields stay out of getAll()', async () => {
      const { jar } = await signedIn(`fields-${storeName}`, { device: 'd' });
      const r = await app.run((s) => s.getAll(), { jar });
      assert.deepEqual(r.value, { cart: [1] });
    });

    test('2,000 logins of one user: at most maxSessionsPerUser (100) stay; the least recently active end; sessions() stays fast', async (t) => {
      const user = `many-${storeName}`;
      const clients = [];
      const started = Date.now();
      for (let round = 0; round < 100; round++) {
        // 20 clients at a time, one after another round by round.
        const batch = await Promise.all(
          Array.from({ length: 20 }, async () => {
            const jar = new CookieJar();
            const r = await app.run((s) => s.login(user), { jar });
            assert.equal(r.error, undefined, r.error && r.error.message);
            return { jar, id: r.session.id };
          })
        );
        clients.push(...batch);
      }
      const loggedIn = Date.now() - started;
      const listStart = process.hrtime.bigint();
      const listed = await app.mw.sessions(user);
      const listMs = Number(process.hrtime.bigint() - listStart) / 1e6;
      t.diagnostic(`2,000 logins in ${loggedIn} ms; sessions() listed ${listed.length} in ${listMs.toFixed(1)} ms`);
      assert.equal(listed.length, 100);
      const recent = new Set(clients.slice(-120).map((c) => c.id));
      assert.deepEqual(
        listed.filter((s) => !recent.has(s.id)),
        [],
        'only sessions of the latest logins are left'
      );
      for (const client of [clients[0], clients[999]]) {
        assert.equal((await app.run((s) => s.userId, { jar: client.jar })).value, null, 'an early session ended');
        assert.equal(await stored(client.id), false);
      }
      assert.equal((await app.run((s) => s.userId, { jar: clients.at(-1).jar })).value, user);
      if (storeName === 'Redis') {
        const entries = await redis.db.command('ZCARD', `session:user:${user}`);
        assert.ok(entries <= 100, `${entries} entries in the index`);
      }
      assert.equal(await app.mw.revoke(user), 100);
      assert.deepEqual(await app.mw.sessions(user), []);
    });
  });
}

describe('Redis: the index of a user stays bounded', () => {
  let app;
  before(async () => {
    app = await startSessionApp(express, { redis: redis.server, session: { secret: SECRET } });
  });
  after(() => app.close());

  test('entries whose lease is over go at most 100 a call; the live ones are listed; the index expires with its last lease', async () => {
    const user = 'stale';
    const index = `session:user:${user}`;
    const past = Date.now() - 1000;
    for (let i = 0; i < 5000; i += 500) {
      const args = [];
      for (let k = i; k < i + 500; k++) args.push(past - k, `stale${String(k).padStart(30, '0')}`);
      await redis.db.command('ZADD', index, ...args);
    }
    const jar = new CookieJar();
    const r = await app.run((s) => s.login(user), { jar });
    // The login's two calls on the index prune 100 each, and the 100 ranked
    // beyond maxSessionsPerUser (100) behind the new entry are ended.
    assert.equal(await redis.db.command('ZCARD', index), 5000 - 300 + 1);
    const listed = await app.mw.sessions(user);
    assert.deepEqual(
      listed.map((s) => s.id),
      [r.session.id]
    );
    assert.equal(await redis.db.command('ZCARD', index), 5000 - 400 + 1);
    const pttl = await redis.db.command('PTTL', index);
    const leaseEnd = Number(await redis.db.command('ZSCORE', index, r.session.id));
    assert.ok(pttl > 0 && Math.abs(Date.now() + pttl - leaseEnd) < 5000, `index PTTL ${pttl}`);
  });

  test('a lease near its end is renewed by the next request: the index entry first, then the session', async () => {
    const user = 'lease';
    const index = `session:user:${user}`;
    const jar = new CookieJar();
    const { session } = await app.run((s) => s.login(user), { jar });
    const key = `session:${session.id}`;
    const soon = Date.now() + 1000;
    await redis.db.command('HSET', key, '\0until', soon);
    await redis.db.command('ZADD', index, soon + 60000, session.id);
    await app.run(() => {}, { jar }); // sees the lease near its end, renews in the background
    await new Promise((resolve) => setTimeout(resolve, 50));
    const until = Number(await redis.db.command('HGET', key, '\0until'));
    const score = Number(await redis.db.command('ZSCORE', index, session.id));
    assert.ok(until > Date.now() + 3600 * 1000, `until ${until}`);
    assert.ok(score >= until, 'the entry outlasts the session');
    assert.ok((await redis.db.command('PTTL', key)) > 250 * 1000, 'the idle timeout holds again');
  });

  test('sessions() during a login keeps the entry of the session that is not bound yet', async () => {
    const user = 'signing-in';
    const index = `session:user:${user}`;
    const jar = new CookieJar();
    const { session } = await app.run((s) => s.set('k', 1), { jar }); // exists, not bound
    await redis.db.command('ZADD', index, Date.now() + 3600 * 1000, session.id);
    await redis.db.command('ZADD', index, Date.now() + 3600 * 1000, 'e'.repeat(43)); // no such session
    assert.deepEqual(await app.mw.sessions(user), []);
    assert.notEqual(await redis.db.command('ZSCORE', index, session.id), null, 'the signing-in entry stays');
    assert.equal(await redis.db.command('ZSCORE', index, 'e'.repeat(43)), null, 'the ended one goes');
  });

  test('a session taken off the index is not put back by its renewal', async () => {
    const user = 'lease-gone';
    const index = `session:user:${user}`;
    const jar = new CookieJar();
    const { session } = await app.run((s) => s.login(user), { jar });
    const key = `session:${session.id}`;
    const soon = Date.now() + 2000;
    await redis.db.command('HSET', key, '\0until', soon);
    await redis.db.command('ZREM', index, session.id);
    await app.run(() => {}, { jar });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await redis.db.command('ZSCORE', index, session.id), null);
    assert.equal(Number(await redis.db.command('HGET', key, '\0until')), soon);
    // Its refreshes and writes keep within the lease: it ends with it.
    await app.run((s) => s.set('k', 1), { jar });
    assert.ok((await redis.db.command('PTTL', key)) <= 2000);
  });
});

describe('awaitTouch: false', () => {
  test('a signed-in session still knows its user when the route runs', async () => {
    const app = await startSessionApp(express, { redis: redis.server, session: { secret: SECRET, awaitTouch: false } });
    try {
      const jar = new CookieJar();
      await app.run((s) => s.login('nonblocking'), { jar });
      const r = await app.run((s) => s.userId, { jar });
      assert.equal(r.value, 'nonblocking');
      const anonymous = await app.run((s) => s.userId, { jar: new CookieJar() });
      assert.equal(anonymous.value, null);
    } finally {
      await app.close();
    }
  });
});
