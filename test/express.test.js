'use strict';

// Express 4 and 5, real HTTP, a real Redis: the original's contract (cookie,
// data layout, idle TTL, every session method) in both ways of giving the
// secret, and the middleware called connect-style from a plain http server.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: delay } = require('node:timers/promises');
const altSession = require('..');
const { connectRedis, CREATED_FIELD } = require('../__test__/servers/redis-client');
const { useRedis } = require('./helpers/fixtures');
const { MODES, startSessionApp } = require('./helpers/session-server');
const { listen, request, cookiesNamed, isClearing, unsignSid, signedSidCookie, CookieJar } = require('./helpers/http');

const SECRET = 'keyboard cat';
const NEW_ID = /^[A-Za-z0-9_-]{43}$/;
const EXPRESS = { 'Express 4': require('express'), 'Express 5': require('express5') };

const redis = useRedis(); // redis.db: database 0

/** Reads a counter, adds one and stores it: the typical per-request session use. */
async function bump(session) {
  const n = ((await session.get('n')) || 0) + 1;
  await session.set('n', n);
  return n;
}

/**
 * Every method of req.session in turn, through `call(method, ...args)`
 * (callback or promise style), checking each result; leaves the session invalidated.
 */
async function tourOfTheApi(call, key) {
  assert.equal(await call('set', 'a', 1), undefined);
  assert.equal(await call('get', 'a'), 1);
  await call('mset', { b: 'x', c: [1, { d: true }] });
  assert.deepEqual(await call('mget', ['a', 'b', 'c', 'missing']), { a: 1, b: 'x', c: [1, { d: true }], missing: null });
  assert.deepEqual(await call('mget', 'b'), { b: 'x' });
  assert.deepEqual(await call('getAll'), { a: 1, b: 'x', c: [1, { d: true }] });
  assert.deepEqual(await redis.db.sessionData(key), { a: '1', b: '"x"', c: '[1,{"d":true}]' });

  await call('remove', 'a');
  assert.deepEqual(await redis.db.sessionData(key), { b: '"x"', c: '[1,{"d":true}]' });
  await call('remove', ['b', 'c']);
  assert.deepEqual(await call('getAll'), {});
  assert.equal(await redis.db.exists(key), true, 'a session whose last key was removed still lives');
  assert.deepEqual(await redis.db.sessionData(key), {});

  await call('set', 'e', 'kept');
  await redis.db.expire(key, 5);
  await call('touch');
  assert.ok((await redis.db.ttl(key)) > 5, 'touch() resets the idle TTL');
  await call('invalidate');
  assert.equal(await redis.db.exists(key), false);
  assert.equal(await call('get', 'e'), null);
}

for (const [expressName, express] of Object.entries(EXPRESS)) {
  for (const [modeName, modeOptions] of Object.entries(MODES)) {
    describe(`${expressName}, ${modeName}`, () => {
      let app; // default options
      let custom; // prefix, tti, dbIndex, secure, domain
      let db3;
      before(async () => {
        app = await startSessionApp(express, { redis: redis.server, ...modeOptions(SECRET) });
        custom = await startSessionApp(express, {
          redis: redis.server,
          ...modeOptions(SECRET, { prefix: 'custom', tti: 1234, dbIndex: 3, secure: true, domain: 'example.test' }),
        });
        db3 = connectRedis(redis.server, 3);
      });
      after(async () => {
        await app.close();
        await custom.close();
        await db3.quit();
      });

      test('a new visitor gets a signed sid cookie; sending it back resumes the same session', async () => {
        const jar = new CookieJar();
        const first = await app.run(() => {}, { jar });
        assert.equal(first.status, 200);
        assert.equal(first.setCookies.length, 1);
        const match = /^sid=(s%3A[^;]+); Path=\/; HttpOnly; SameSite=Lax$/.exec(first.setCookies[0]);
        assert.ok(match, `unexpected Set-Cookie: ${first.setCookies[0]}`);
        const [, signature] = decodeURIComponent(match[1]).split('.');
        assert.match(signature, /^[A-Za-z0-9+/]{43}$/, 'base64 HMAC-SHA256 without padding');
        const id = unsignSid(match[1], SECRET);
        assert.match(String(id), NEW_ID, 'the signature verifies and the id is 43 base64url chars');
        assert.equal(first.session.id, id);
        assert.equal(first.session.isNew, true);

        const second = await app.run(() => {}, { jar });
        assert.equal(second.session.isNew, false);
        assert.equal(second.session.id, id);
        assert.deepEqual(second.setCookies, [], 'a known visitor gets no new cookie');
      });

      test('a Cookie header over 8 KiB names no session, even with a valid sid in it', async () => {
        // A deliberate limit (no browser sends this much to a well-behaved site): the
        // whole header is ignored in both modes, and a fresh session starts.
        const jar = new CookieJar();
        const { session } = await app.run((s) => s.set('user', 'ann'), { jar });
        const others = ['a', 'b', 'c'].map((name) => `${name}=${'v'.repeat(3000)}`).join('; ');
        const r = await app.run((s) => s.get('user'), { cookie: `${jar.header()}; ${others}` });
        assert.equal(r.session.isNew, true);
        assert.notEqual(r.session.id, session.id);
        assert.equal(r.value, null);
        assert.equal(cookiesNamed(r.setCookies).length, 1, 'a fresh cookie');
        const back = await app.run((s) => s.get('user'), { cookie: jar.header() });
        assert.deepEqual([back.session.id, back.value], [session.id, 'ann'], 'the old session is intact');
      });

      test('Secure and Domain are set when session.secure and session.domain are', async () => {
        const { setCookies } = await custom.run();
        const [cookie] = cookiesNamed(setCookies);
        assert.ok(cookie, 'a sid cookie');
        assert.deepEqual(cookie.attributes, {
          domain: 'example.test',
          path: '/',
          httponly: true,
          samesite: 'Lax',
          secure: true,
        });
      });

      test('a counter persists across requests in one hash at session:<id> with TTL = tti (300)', async () => {
        const jar = new CookieJar();
        const counts = [];
        let id;
        for (let i = 0; i < 3; i++) {
          const r = await app.run(bump, { jar });
          assert.equal(r.error, undefined);
          counts.push(r.value);
          id = r.session.id;
        }
        assert.deepEqual(counts, [1, 2, 3]);
        assert.deepEqual(await redis.db.keys(`*${id}*`), [`session:${id}`]);
        assert.equal(await redis.db.type(`session:${id}`), 'hash');
        assert.deepEqual(await redis.db.sessionData(`session:${id}`), { n: '3' });
        const ttl = await redis.db.ttl(`session:${id}`);
        assert.ok(ttl > 290 && ttl <= 300, `TTL ${ttl}`);
      });

      test("a new visitor's first write creates the session with TTL = tti (set, mset, incr)", async () => {
        const writes = [(s) => s.set('a', 1), (s) => s.mset({ a: 1, b: 2 }), (s) => s.incr('a')];
        for (const write of writes) {
          const r = await app.run(write); // one request, no cookie: no refresh before or after
          assert.equal(r.error, undefined);
          assert.equal(r.session.isNew, true);
          const ttl = await redis.db.ttl(`session:${r.session.id}`);
          assert.ok(ttl > 290 && ttl <= 300, `${write}: TTL ${ttl}`);
        }
      });

      test('prefix, tti and dbIndex choose the key, its TTL and the database', async () => {
        const jar = new CookieJar();
        await custom.run(bump, { jar });
        const { session, value } = await custom.run(bump, { jar });
        assert.equal(value, 2);
        assert.deepEqual(await db3.keys(`*${session.id}*`), [`custom:${session.id}`]);
        assert.deepEqual(await db3.sessionData(`custom:${session.id}`), { n: '2' });
        const ttl = await db3.ttl(`custom:${session.id}`);
        assert.ok(ttl > 1224 && ttl <= 1234, `TTL ${ttl}`);
        assert.deepEqual(await redis.db.keys(`*${session.id}*`), [], 'nothing in database 0');
      });

      test('values are stored as JSON strings, one hash field per key, and read back equal', async () => {
        const values = { str: 'hé "q"', num: 42.5, obj: { a: [1, { b: null }] }, arr: [1, 'x'], nul: null, yes: true };
        const { session } = await app.run((s) => s.mset(values));
        const stored = await redis.db.sessionData(`session:${session.id}`);
        assert.deepEqual(stored, Object.fromEntries(Object.entries(values).map(([k, v]) => [k, JSON.stringify(v)])));
        for (const [key, value] of Object.entries(values)) assert.deepEqual(await session.get(key), value);
        assert.deepEqual(await session.getAll(), values);
      });

      test('a raw non-JSON field reads as the raw string; a missing key reads as null', async () => {
        const { session } = await app.run((s) => s.set('n', 1));
        await redis.db.hset(`session:${session.id}`, 'raw', 'not {json');
        const r = await app.run(
          async (s) => ({
            raw: await s.get('raw'),
            missing: await s.get('missing'),
            mget: await s.mget(['raw', 'missing']),
            all: await s.getAll(),
          }),
          { cookie: signedSidCookie(session.id, SECRET) }
        );
        assert.deepEqual(r.value, {
          raw: 'not {json',
          missing: null,
          mget: { raw: 'not {json', missing: null },
          all: { n: 1, raw: 'not {json' },
        });
      });

      test('every method works callback-style (called once, with null error) and returns a promise', async () => {
        const { value: key, error } = await app.run(async (s) => {
          let started = 0;
          let callbacks = 0;
          let returnedPromises = 0;
          const call = (method, ...args) =>
            new Promise((resolve, reject) => {
              started++;
              const returned = s[method](...args, (err, value) => {
                callbacks++;
                if (err !== null) reject(err);
                else resolve(value);
              });
              if (returned instanceof Promise) returnedPromises++;
            });
          await tourOfTheApi(call, `session:${s.id}`);
          await delay(20);
          assert.deepEqual({ callbacks, returnedPromises }, { callbacks: started, returnedPromises: started });
          return `session:${s.id}`;
        });
        assert.equal(error, undefined);
        assert.equal(await redis.db.exists(key), false);
      });

      test('every method works promise-style', async () => {
        const { error, setCookies } = await app.run(async (s) => {
          await tourOfTheApi((method, ...args) => s[method](...args), `session:${s.id}`);
        });
        assert.equal(error, undefined);
        assert.ok(cookiesNamed(setCookies).some(isClearing), 'invalidate() cleared the cookie');
      });

      test('set(k, undefined) removes k; mset removes the keys whose value is undefined', async () => {
        const { session } = await app.run((s) => s.mset({ a: 1, b: 2, c: 3 }));
        const key = `session:${session.id}`;
        await session.set('a', undefined);
        assert.deepEqual(await redis.db.sessionData(key), { b: '2', c: '3' });
        await session.mset({ b: undefined, d: 4 });
        assert.deepEqual(await redis.db.sessionData(key), { c: '3', d: '4' });
        assert.deepEqual(await session.mget(['a', 'b']), { a: null, b: null });
      });

      test('invalidate() deletes the key and clears the cookie with the same Path and Domain', async () => {
        for (const [server, db, prefix, domain] of [
          [app, redis.db, 'session', undefined],
          [custom, db3, 'custom', 'example.test'],
        ]) {
          const jar = new CookieJar();
          const { session } = await server.run((s) => s.set('user', 'ann'), { jar });
          assert.equal(await db.exists(`${prefix}:${session.id}`), true);

          const { setCookies } = await server.run((s) => s.invalidate(), { jar });
          assert.equal(await db.exists(`${prefix}:${session.id}`), false);
          const cleared = cookiesNamed(setCookies);
          assert.equal(cleared.length, 1, `one sid Set-Cookie: ${setCookies}`);
          assert.equal(cleared[0].value, '');
          assert.equal(cleared[0].attributes.path, '/');
          assert.equal(cleared[0].attributes.domain, domain);
          assert.equal(Date.parse(cleared[0].attributes.expires), 0, 'expires in 1970');

          const after = await server.run(() => {}, { jar });
          assert.equal(after.session.isNew, true, 'the browser dropped the cookie: a fresh session');
          assert.notEqual(after.session.id, session.id);
        }
      });

      test('invalidate() in the request that created the session sends only the clearing cookie', async () => {
        const jar = new CookieJar();
        const { setCookies, session } = await app.run((s) => s.invalidate(), { jar });
        assert.equal(session.isNew, true);
        const sids = cookiesNamed(setCookies);
        assert.equal(sids.length, 1, `one sid Set-Cookie: ${setCookies}`);
        assert.ok(isClearing(sids[0]));
        assert.equal(jar.header(), undefined, 'the browser keeps no sid');
      });

      test('a new session is recorded at once (its creation time, TTL = tti); every later request keeps its id and resets the TTL', async () => {
        const jar = new CookieJar();
        const { session } = await custom.run(() => {}, { jar });
        const key = `custom:${session.id}`;
        assert.deepEqual(await db3.keys(`*${session.id}*`), [key], 'one key, for the issued id');
        const stored = await db3.hgetall(key);
        assert.deepEqual(Object.keys(stored), [CREATED_FIELD], 'nothing but its creation time');
        assert.ok(Math.abs(Number(stored[CREATED_FIELD]) - Date.now()) < 5000, `created ${stored[CREATED_FIELD]}`);
        assert.ok((await db3.ttl(key)) > 1224, 'expires after tti');

        // A later request writes under the issued id: no fresh id, no new cookie.
        const written = await custom.run((s) => s.set('x', 1), { jar });
        assert.equal(written.session.id, session.id);
        assert.equal(written.session.isNew, false);
        assert.deepEqual(cookiesNamed(written.setCookies), [], 'no new cookie');
        assert.deepEqual(await db3.sessionData(key), { x: '1' });
        await db3.expire(key, 5);
        await custom.run(() => {}, { jar });
        const ttl = await db3.ttl(key);
        assert.ok(ttl > 1224, `TTL after a request: ${ttl}`);
      });
    });
  }
}

describe('awaitTouch: false', () => {
  test('next() runs at once, and the idle TTL is still refreshed, once per busy session', async () => {
    const app = await startSessionApp(require('express'), {
      redis: redis.server,
      session: { secret: SECRET, awaitTouch: false, tti: 600 },
    });
    try {
      const jar = new CookieJar();
      const { session } = await app.run((s) => s.set('x', 1), { jar });
      const key = `session:${session.id}`;
      await redis.db.expire(key, 5);
      const results = await Promise.all(Array.from({ length: 5 }, () => app.run((s) => s.get('x'), { jar })));
      assert.deepEqual(
        results.map((r) => [r.status, r.session.isNew, r.value]),
        Array(5).fill([200, false, 1])
      );
      await delay(300); // background refreshes are gathered for 100 ms
      const ttl = await redis.db.ttl(key);
      assert.ok(ttl > 590, `TTL after the requests: ${ttl}`);
    } finally {
      await app.close();
    }
  });
});

describe('plain http.createServer, connect-style mw(req, res, next)', () => {
  let mw;
  let server;
  before(async () => {
    mw = altSession({ redis: redis.server.options, session: { secret: SECRET } });
    server = await listen((req, res) => {
      // Other code set cookies before the session middleware ran.
      res.setHeader('Set-Cookie', req.url === '/array' ? ['a=1; Path=/', 'b=2; Path=/'] : 'theme=dark; Path=/');
      mw(req, res, async (err) => {
        if (err) {
          res.statusCode = 500;
          return res.end(String(err.code));
        }
        if (req.url === '/logout') await req.session.invalidate();
        const n = req.url === '/logout' ? null : await bump(req.session);
        res.end(JSON.stringify({ id: req.session.id, isNew: req.session.isNew, n }));
      });
    });
  });
  after(async () => {
    await server.close();
    await mw.close();
  });

  test('the session cookie is added next to a Set-Cookie string already set', async () => {
    const jar = new CookieJar();
    const first = await request(server.origin, '/');
    assert.equal(first.status, 200);
    assert.equal(first.setCookies.length, 2, String(first.setCookies));
    assert.equal(first.setCookies[0], 'theme=dark; Path=/');
    const [sid] = cookiesNamed(first.setCookies);
    const body = JSON.parse(first.body);
    assert.equal(unsignSid(sid.value, SECRET), body.id);
    assert.deepEqual([body.isNew, body.n], [true, 1]);
    jar.store(first.setCookies);

    const second = JSON.parse((await request(server.origin, '/', { cookie: jar.header() })).body);
    assert.deepEqual(second, { id: body.id, isNew: false, n: 2 });
  });

  test('the session cookie is added to an array of Set-Cookie headers already set', async () => {
    const { setCookies } = await request(server.origin, '/array');
    assert.deepEqual(setCookies.slice(0, 2), ['a=1; Path=/', 'b=2; Path=/']);
    assert.equal(cookiesNamed(setCookies).length, 1);
  });

  test('invalidate() adds its clearing cookie and keeps the other cookies', async () => {
    const jar = new CookieJar();
    jar.store((await request(server.origin, '/')).setCookies);
    const { id } = JSON.parse((await request(server.origin, '/', { cookie: jar.header() })).body);
    assert.equal(await redis.db.exists(`session:${id}`), true);

    const { setCookies } = await request(server.origin, '/logout', { cookie: jar.header() });
    assert.equal(setCookies[0], 'theme=dark; Path=/');
    const sids = cookiesNamed(setCookies);
    assert.equal(sids.length, 1);
    assert.ok(isClearing(sids[0]));
    assert.equal(await redis.db.exists(`session:${id}`), false);
  });
});
