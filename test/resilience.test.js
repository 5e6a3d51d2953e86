'use strict';

// Resilience of the Redis backend, over real HTTP with real Express and real
// redis-server processes this file starts (never the one on port 6379):
// Redis going down and coming back, Redis never up, commandTimeout against a
// frozen Redis, a Node process exiting by itself (or not before its call has
// settled), close(), and password authentication.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const express = require('express');

const altSession = require('..');
const { startRedis, freePort } = require('../__test__/servers/redis');
const { connectRedis, withRedisClient } = require('../__test__/servers/redis-client');
const { listen, request, cookieHeader } = require('./helpers/http');
const { recordUnhandledRejections } = require('./helpers/fixtures');
const { runProcess } = require('../__test__/servers/child-process');

const PACKAGE = path.resolve(__dirname, '..');
const DOWN_CODES = ['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT'];
const FAIL_FAST_MS = 2000; // default commandTimeout is 1000 ms

// ---------------------------------------------------------------------------
// Whole-file bookkeeping: no unhandled rejection may happen anywhere.

/** Everything to release in `after`, last opened first. */
const cleanups = [];
function onCleanup(fn) {
  cleanups.push(fn);
}
after(async () => {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      // best effort: keep releasing the rest
    }
  }
});

// Registered after the hook above: still recording while it releases everything.
const unhandled = recordUnhandledRejections();

// ---------------------------------------------------------------------------
// Helpers for this file (HTTP, cookies and Redis come from test/helpers).

/** Connected clients other than the asking one. */
async function otherClients(redis) {
  const list = await withRedisClient(redis, (db) => db.command('CLIENT', 'LIST'));
  return list.split('\n').filter((l) => l.trim() && !/cmd=client\|list/.test(l)).length;
}

/** A private redis-server, stopped (and un-frozen) in `after`. */
async function privateRedis(options) {
  const redis = await startRedis(options);
  onCleanup(async () => {
    if (redis.pid) {
      try {
        process.kill(redis.pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    await redis.stop();
  });
  return redis;
}

/** A middleware closed in `after` (close() is idempotent enough for a second call to be harmless). */
function middleware(options) {
  const mw = altSession(options);
  onCleanup(() => Promise.race([mw.close(), sleep(2000)]));
  return mw;
}

/**
 * An Express app on `mw` with routes that exercise the session and an error
 * handler answering 500 `{ code, message }`, served until `after`. Keeps the
 * last `req.session`.
 */
async function sessionApp(mw) {
  const state = { lastSession: null, routeErrors: [] };
  const app = express();
  app.use(mw);
  app.use((req, res, next) => {
    state.lastSession = req.session;
    next();
  });
  app.get('/set', async (req, res, next) => {
    try {
      await req.session.set('v', req.query.v);
      res.json({ id: req.session.id, isNew: req.session.isNew });
    } catch (err) {
      next(err);
    }
  });
  app.get('/get', async (req, res, next) => {
    try {
      res.json({ id: req.session.id, isNew: req.session.isNew, v: await req.session.get('v') });
    } catch (err) {
      next(err);
    }
  });
  // One set/get round trip in a single request (data may be gone after a restart).
  app.get('/roundtrip', async (req, res, next) => {
    try {
      const value = `rt-${Date.now()}`;
      await req.session.set('rt', value);
      const back = await req.session.get('rt');
      res.json({ id: req.session.id, isNew: req.session.isNew, ok: back === value });
    } catch (err) {
      next(err);
    }
  });
  // Never touches the session.
  app.get('/none', (req, res) => res.json({ id: req.session.id, isNew: req.session.isNew }));
  // A route written for the original: callback style, errors to next.
  app.get('/callback-set', (req, res, next) => {
    req.session.set('cb', 1, (err) => (err ? next(err) : res.json({ ok: true })));
  });
  app.use((err, req, res, next) => {
    if (req.session) state.lastSession = req.session; // also when the middleware's own call failed
    state.routeErrors.push(err);
    res.status(500).json({ code: err.code, message: err.message, isError: err instanceof Error });
  });
  const { server, origin, close } = await listen(app);
  onCleanup(close);
  state.origin = origin;
  state.server = server;
  return state;
}

/** The session operations under test, each as (session, callback?) => promise. */
const OPERATIONS = {
  get: (s, cb) => s.get('v', cb),
  mget: (s, cb) => s.mget(['v', 'w'], cb),
  getAll: (s, cb) => s.getAll(cb),
  set: (s, cb) => s.set('v', 'x', cb),
  mset: (s, cb) => s.mset({ v: 'x', w: 'y' }, cb),
  remove: (s, cb) => s.remove(['v', 'w'], cb),
  touch: (s, cb) => s.touch(cb),
  invalidate: (s, cb) => s.invalidate(cb),
};

/** Awaits a promise that must reject; returns { err, ms }. */
async function rejection(start, promise) {
  try {
    const value = await promise;
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (err) {
    if (err && err.code === 'ERR_ASSERTION') throw err;
    return { err, ms: Date.now() - start };
  }
}

function assertSessionError(err, codes, label) {
  assert.ok(err instanceof Error, `${label}: expected an Error, got ${err}`);
  assert.ok(codes.includes(err.code), `${label}: code ${err.code} (${err.message}) not in ${codes.join(', ')}`);
}

/** Calls an operation in callback style: resolves { err, value, ms, calls, promise }. */
function callbackStyle(op, session, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    let calls = 0;
    const timer = setTimeout(() => reject(new Error(`callback not called within ${timeoutMs} ms`)), timeoutMs);
    const promise = op(session, (err, value) => {
      calls++;
      if (calls > 1) return;
      clearTimeout(timer);
      const ms = Date.now() - start;
      // Leave a moment for a (wrong) second call to show up.
      setTimeout(() => resolve({ err, value, ms, calls: () => calls, promise }), 50);
    });
    assert.ok(promise && typeof promise.then === 'function', 'callback-style call still returns a promise');
  });
}

/** Polls until the round trip route works; returns the elapsed ms and the last answer. */
async function pollUntilServing(origin, cookie, limitMs) {
  const start = Date.now();
  let last;
  while (Date.now() - start < limitMs) {
    last = await request(origin, '/roundtrip', { cookie });
    if (last.status === 200 && last.json && last.json.ok) return { ms: Date.now() - start, res: last };
    await sleep(100);
  }
  return { ms: Date.now() - start, res: last, failed: true };
}

// ---------------------------------------------------------------------------

describe('Redis goes down after sessions exist, then comes back', () => {
  let redis;
  let app;
  let cookie;
  let sessionId;
  let existing; // the req.session of a request made while Redis was up

  before(async () => {
    redis = await privateRedis();
    app = await sessionApp(middleware({ redis: { port: redis.port }, session: { secret: 's' } }));
  });

  test('a session is created and stored while Redis is up', async () => {
    const first = await request(app.origin, '/set?v=hello');
    assert.equal(first.status, 200, first.body);
    cookie = cookieHeader(first.setCookies);
    assert.ok(cookie, 'the new visitor gets a cookie');
    sessionId = first.json.id;
    const second = await request(app.origin, '/get', { cookie });
    assert.equal(second.status, 200, second.body);
    assert.deepEqual(second.json, { id: sessionId, isNew: false, v: 'hello' });
    existing = app.lastSession;
    assert.equal(existing.id, sessionId);
    await redis.stop();
  });

  for (const [name, op] of Object.entries(OPERATIONS)) {
    test(`with Redis down, ${name}() rejects fast with a connection/timeout code (promise)`, async (t) => {
      const { err, ms } = await rejection(Date.now(), op(existing));
      t.diagnostic(`${name}() promise rejected after ${ms} ms: ${err.code} ${err.message}`);
      assertSessionError(err, DOWN_CODES, name);
      assert.ok(ms < FAIL_FAST_MS, `${name}() took ${ms} ms to fail`);
    });

    test(`with Redis down, ${name}() calls back fast with a connection/timeout code (callback)`, async (t) => {
      const result = await callbackStyle(op, existing);
      t.diagnostic(`${name}() callback got its error after ${result.ms} ms: ${result.err && result.err.code}`);
      assertSessionError(result.err, DOWN_CODES, `${name} callback`);
      assert.ok(result.ms < FAIL_FAST_MS, `${name}() callback took ${result.ms} ms`);
      assert.equal(result.calls(), 1, 'the callback is called exactly once');
      const fromPromise = await rejection(Date.now(), result.promise);
      assert.equal(fromPromise.err.code, result.err.code, 'the returned promise rejects alike');
    });
  }

  test('with Redis down, calls nobody handles raise no unhandledRejection', async () => {
    // Code written for the original calls these with no callback and no await.
    existing.set('fire', 'forget');
    existing.mset({ a: 1 });
    existing.remove('a');
    existing.touch();
    existing.get('a');
    await sleep(FAIL_FAST_MS + 200);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
  });

  test('with Redis down, a request with a session cookie gets the error through next(err): 500 with the code', async (t) => {
    const start = Date.now();
    const res = await request(app.origin, '/get', { cookie });
    const ms = Date.now() - start;
    t.diagnostic(`HTTP request with a cookie answered ${res.status} after ${ms} ms: ${res.body}`);
    assert.equal(res.status, 500, res.body);
    assert.ok(DOWN_CODES.includes(res.json.code), res.body);
    assert.equal(res.json.isError, true);
    assert.ok(ms < FAIL_FAST_MS + 500, `the request took ${ms} ms`);
  });

  test('with Redis down, a new visitor whose route writes gets a 500 with the code (promise and callback routes)', async () => {
    for (const route of ['/set?v=1', '/callback-set']) {
      const start = Date.now();
      const res = await request(app.origin, route);
      const ms = Date.now() - start;
      assert.equal(res.status, 500, `${route}: ${res.body}`);
      assert.ok(DOWN_CODES.includes(res.json.code), `${route}: ${res.body}`);
      assert.ok(ms < FAIL_FAST_MS + 500, `${route} took ${ms} ms`);
    }
  });

  test('with Redis down, many concurrent requests all fail fast (no pile-up)', async () => {
    const start = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, () => request(app.origin, '/get', { cookie })));
    const ms = Date.now() - start;
    for (const res of results) {
      assert.equal(res.status, 500, res.body);
      assert.ok(DOWN_CODES.includes(res.json.code), res.body);
    }
    assert.ok(ms < FAIL_FAST_MS + 1000, `20 concurrent requests took ${ms} ms`);
  });

  test('when Redis is back, the same middleware serves again by itself, on a fresh session', async (t) => {
    await redis.start();
    const { ms, res, failed } = await pollUntilServing(app.origin, cookie, 5000);
    t.diagnostic(`service resumed ${ms} ms after redis-server listened again`);
    assert.ok(!failed, `not serving 5 s after Redis came back: ${res && res.status} ${res && res.body}`);
    // The restarted Redis kept nothing: the old id is dead and not revived by the write.
    assert.notEqual(res.json.id, sessionId, 'the lost session is not revived');
    assert.equal(res.json.isNew, true, 'the request moved to a session of its own');
    // The session object of the earlier request reaches Redis again too. The
    // restarted Redis lost the session's data, so its id is dead: a write
    // would need a fresh session, whose cookie that request's response (sent
    // long ago) can no longer carry, so it fails and writes nothing.
    await assert.rejects(existing.set('after', { back: true }), { code: 'ERR_SESSION_HEADERS_SENT' });
    assert.equal(existing.id, sessionId);
    assert.deepEqual(await existing.get('after'), null);
    const revived = await withRedisClient(redis, (db) => db.command('EXISTS', `session:${sessionId}`));
    assert.equal(revived, 0, 'the lost session is not revived');
  });

  test('a second outage is survived the same way', async (t) => {
    await redis.stop();
    const res = await request(app.origin, '/get', { cookie });
    assert.equal(res.status, 500, res.body);
    assert.ok(DOWN_CODES.includes(res.json.code), res.body);
    await redis.start();
    const resumed = await pollUntilServing(app.origin, cookie, 5000);
    t.diagnostic(`second recovery took ${resumed.ms} ms`);
    assert.ok(!resumed.failed, `not serving after the second restart: ${resumed.res && resumed.res.body}`);
  });
});

describe('a middleware created while Redis is not running at all', () => {
  let redis;
  let port;

  before(async () => {
    redis = await privateRedis();
    port = redis.port;
    await redis.stop(); // nothing listens on `port` now
  });

  test('creating it does not throw; calls fail fast with a connection/timeout code; it serves once Redis starts', async (t) => {
    let mw;
    assert.doesNotThrow(() => {
      mw = middleware({ redis: { port }, session: { secret: 's' } });
    });
    const app = await sessionApp(mw);

    // A new visitor still gets a cookie, and recording its session fails fast (to next(err)).
    const first = await request(app.origin, '/roundtrip');
    const cookie = cookieHeader(first.setCookies);
    assert.ok(cookie, 'a cookie is issued even with Redis down');
    assert.equal(first.status, 500, first.body);
    assert.ok(DOWN_CODES.includes(first.json.code), first.body);

    const session = app.lastSession;
    for (const [name, op] of Object.entries(OPERATIONS)) {
      const { err, ms } = await rejection(Date.now(), op(session));
      t.diagnostic(`never-connected ${name}() failed after ${ms} ms: ${err.code}`);
      assertSessionError(err, DOWN_CODES, name);
      assert.ok(ms < FAIL_FAST_MS, `${name}() took ${ms} ms`);
      const cb = await callbackStyle(op, session);
      assertSessionError(cb.err, DOWN_CODES, `${name} callback`);
      assert.ok(cb.ms < FAIL_FAST_MS, `${name}() callback took ${cb.ms} ms`);
    }

    const start = Date.now();
    const withCookie = await request(app.origin, '/get', { cookie });
    assert.equal(withCookie.status, 500, withCookie.body);
    assert.ok(DOWN_CODES.includes(withCookie.json.code), withCookie.body);
    assert.ok(Date.now() - start < FAIL_FAST_MS + 500);

    // The app booted before Redis: once Redis is up it just works.
    await redis.start();
    const resumed = await pollUntilServing(app.origin, cookie, 5000);
    t.diagnostic(`first connection made ${resumed.ms} ms after redis-server started`);
    assert.ok(!resumed.failed, `not serving after Redis started: ${resumed.res && resumed.res.body}`);
  });

  test('connection refused on a host with nothing listening, with a url option, fails fast too', async () => {
    const port = await freePort();
    const mw = middleware({ redis: { url: `redis://127.0.0.1:${port}/0` }, session: { secret: 's' } });
    const app = await sessionApp(mw);
    const start = Date.now();
    const res = await request(app.origin, '/roundtrip');
    assert.equal(res.status, 500, res.body);
    assert.ok(DOWN_CODES.includes(res.json.code), res.body);
    assert.ok(Date.now() - start < FAIL_FAST_MS);
  });
});

describe('commandTimeout against a Redis that does not answer', () => {
  let redis;
  let app;
  let cookie;
  let session;

  before(async () => {
    redis = await privateRedis();
    app = await sessionApp(middleware({ redis: { port: redis.port, commandTimeout: 300 }, session: { secret: 's' } }));
    const first = await request(app.origin, '/set?v=A');
    assert.equal(first.status, 200, first.body);
    cookie = cookieHeader(first.setCookies);
    session = app.lastSession;
    await session.set('w', 'B');
  });

  test('CLIENT PAUSE: calls reject with ERR_SESSION_TIMEOUT at about 300 ms, then later replies are not mixed up', async (t) => {
    // (On Redis 7.0 CLIENT UNPAUSE is itself held by the pause: let it expire instead.)
    const pauseMs = 2500;
    const pauser = connectRedis(redis);
    await pauser.command('PING'); // connected before the clock starts
    const pausedUntil = Date.now() + pauseMs;
    try {
      assert.equal(await pauser.command('CLIENT', 'PAUSE', String(pauseMs), 'ALL'), 'OK');
      for (const [name, op] of Object.entries({ get: OPERATIONS.get, set: OPERATIONS.set, touch: OPERATIONS.touch })) {
        const { err, ms } = await rejection(Date.now(), op(session));
        t.diagnostic(`paused ${name}() rejected after ${ms} ms: ${err.code}`);
        assertSessionError(err, ['ERR_SESSION_TIMEOUT'], name);
        assert.ok(ms >= 250, `${name}() gave up after only ${ms} ms`);
        assert.ok(ms < 1000, `${name}() took ${ms} ms (commandTimeout 300)`);
      }
      const start = Date.now();
      const res = await request(app.origin, '/get', { cookie });
      assert.equal(res.status, 500, res.body);
      assert.equal(res.json.code, 'ERR_SESSION_TIMEOUT', res.body);
      assert.ok(Date.now() - start < 1000);
      assert.ok(Date.now() < pausedUntil, 'all of the above ran while Redis was paused');
    } finally {
      await sleep(Math.max(0, pausedUntil - Date.now()) + 50);
      await pauser.quit(); // only now: during the pause its QUIT would wait too
    }
    // The timed-out commands' late replies must not answer later commands.
    // (the paused set('v', 'x') may or may not have been applied after the pause)
    assert.equal(await session.get('w'), 'B');
    assert.deepEqual(await session.mget(['w', 'nope']), { w: 'B', nope: null });
    const res = await request(app.origin, '/roundtrip', { cookie });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.ok, true);
  });

  test('SIGSTOP: calls reject with ERR_SESSION_TIMEOUT in well under 2 s; SIGCONT and it serves again', async (t) => {
    const pid = redis.pid;
    assert.ok(pid, 'the helper exposes the redis-server pid');
    process.kill(pid, 'SIGSTOP');
    try {
      for (const [name, op] of Object.entries(OPERATIONS)) {
        const { err, ms } = await rejection(Date.now(), op(session));
        t.diagnostic(`frozen ${name}() rejected after ${ms} ms: ${err.code}`);
        assertSessionError(err, ['ERR_SESSION_TIMEOUT'], name);
        assert.ok(ms < 1000, `${name}() took ${ms} ms (commandTimeout 300)`);
      }
      // Concurrent calls time out together, not one after the other.
      const start = Date.now();
      const all = await Promise.allSettled(Array.from({ length: 10 }, () => session.get('w')));
      const ms = Date.now() - start;
      t.diagnostic(`10 concurrent calls against a frozen Redis settled after ${ms} ms`);
      for (const r of all) {
        assert.equal(r.status, 'rejected');
        assert.equal(r.reason.code, 'ERR_SESSION_TIMEOUT');
      }
      assert.ok(ms < 1000, `10 concurrent calls took ${ms} ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const resumed = await pollUntilServing(app.origin, cookie, 5000);
    t.diagnostic(`served again ${resumed.ms} ms after SIGCONT`);
    assert.ok(!resumed.failed, resumed.res && resumed.res.body);
    // The timed-out writes (remove, invalidate...) may have run once Redis
    // resumed: write afresh in a session of its own, then check each reply
    // answers its own command.
    assert.equal((await request(app.origin, '/set?v=1')).status, 200);
    const live = app.lastSession;
    await live.mset({ p: 'P', q: 'Q' });
    const [p, q, both] = await Promise.all([live.get('p'), live.get('q'), live.mget(['q', 'p'])]);
    assert.deepEqual([p, q, both], ['P', 'Q', { q: 'Q', p: 'P' }]);
  });

  test('the default commandTimeout (1000 ms) bounds calls against a frozen Redis within 2 s', async (t) => {
    const mw = middleware({ redis: { port: redis.port }, session: { secret: 's' } });
    const other = await sessionApp(mw);
    const first = await request(other.origin, '/set?v=1');
    assert.equal(first.status, 200, first.body);
    const s = other.lastSession;
    process.kill(redis.pid, 'SIGSTOP');
    try {
      const { err, ms } = await rejection(Date.now(), s.get('v'));
      t.diagnostic(`default timeout: get() rejected after ${ms} ms: ${err.code}`);
      assertSessionError(err, ['ERR_SESSION_TIMEOUT'], 'get');
      assert.ok(ms >= 900 && ms < FAIL_FAST_MS, `get() took ${ms} ms`);
      const start = Date.now();
      const res = await request(other.origin, '/get', { cookie: cookieHeader(first.setCookies) });
      const reqMs = Date.now() - start;
      t.diagnostic(`default timeout: HTTP request answered ${res.status} after ${reqMs} ms`);
      assert.equal(res.status, 500, res.body);
      assert.equal(res.json.code, 'ERR_SESSION_TIMEOUT');
      assert.ok(reqMs < FAIL_FAST_MS + 500);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
  });

  test('awaitTouch: false: with Redis frozen, a returning visitor is served without waiting for it', async () => {
    const options = { redis: { port: redis.port, commandTimeout: 300 }, session: { secret: 's' } };
    const blocking = await sessionApp(middleware(options));
    const nonBlocking = await sessionApp(middleware({ ...options, session: { secret: 's', awaitTouch: false } }));
    const first = await request(nonBlocking.origin, '/set?v=1');
    assert.equal(first.status, 200, first.body);
    const cookie = cookieHeader(first.setCookies);
    await request(blocking.origin, '/get', { cookie }); // connected before the freeze
    process.kill(redis.pid, 'SIGSTOP');
    try {
      const served = await request(nonBlocking.origin, '/none', { cookie });
      assert.equal(served.status, 200, served.body);
      assert.deepEqual(served.json, { id: first.json.id, isNew: false });
      // The default waits for its refresh, which cannot come, then runs the route.
      const waited = await request(blocking.origin, '/none', { cookie });
      assert.equal(waited.status, 200, waited.body);
      assert.deepEqual(waited.json, { id: first.json.id, isNew: false });
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
  });

  test('a frozen Redis at connect time (new middleware) also times out instead of hanging', async (t) => {
    const mw = middleware({ redis: { port: redis.port, commandTimeout: 300 }, session: { secret: 's' } });
    const other = await sessionApp(mw);
    process.kill(redis.pid, 'SIGSTOP');
    try {
      const start = Date.now();
      const res = await request(other.origin, '/roundtrip');
      const ms = Date.now() - start;
      t.diagnostic(`first-ever call against a frozen Redis answered ${res.status} after ${ms} ms: ${res.json && res.json.code}`);
      assert.equal(res.status, 500, res.body);
      assert.ok(DOWN_CODES.includes(res.json.code), res.body);
      assert.ok(ms < 1500, `took ${ms} ms`);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
    const resumed = await pollUntilServing(other.origin, undefined, 5000);
    assert.ok(!resumed.failed, resumed.res && resumed.res.body);
  });
});

// ---------------------------------------------------------------------------
// Child processes: does Node exit by itself, and not too early?

/** Runs `node -e script` in /work/main; resolves { code, signal, stdout, stderr, ms, timedOut }. */
function runChild(script, { env = {}, limitMs = 10000 } = {}) {
  return runProcess(process.execPath, ['-e', script], {
    cwd: PACKAGE,
    env: { ...env, ALT_SESSION_PACKAGE: PACKAGE },
    timeoutMs: limitMs,
  });
}

/** The lines `TAG json` a child printed, as { TAG: value }. */
function childOutput(stdout) {
  const out = {};
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z_]+) (.*)$/.exec(line);
    if (m) out[m[1]] = JSON.parse(m[2]);
  }
  return out;
}

// Shared prelude of the child scripts: an Express app whose one route uses the
// session, served for exactly one request (no keep-alive), then closed.
const CHILD_PRELUDE = `
const altSession = require(process.env.ALT_SESSION_PACKAGE);
const express = require('express');
const http = require('node:http');
const print = (tag, value) => console.log(tag + ' ' + JSON.stringify(value));
process.on('unhandledRejection', (r) => { print('UNHANDLED', String(r)); process.exitCode = 3; });
function serveOnce(mw, onSession) {
  return new Promise((resolve, reject) => {
    const app = express();
    app.use(mw);
    app.get('/', async (req, res, next) => {
      try { res.json(await onSession(req.session)); } catch (err) { next(err); }
    });
    app.use((err, req, res, next) => res.status(500).json({ code: err.code }));
    const server = app.listen(0, '127.0.0.1', () => {
      http.get({ host: '127.0.0.1', port: server.address().port, path: '/', agent: false,
                 headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => server.close(() => resolve({ status: res.statusCode, body: JSON.parse(body) })));
      }).on('error', reject);
    });
  });
}
`;

describe('process lifetime', () => {
  let redis;

  before(async () => {
    redis = await privateRedis();
  });

  test('a process that served a request and closed its server exits by itself without mw.close()', async (t) => {
    const script = `${CHILD_PRELUDE}
      const mw = altSession({ redis: { port: Number(process.env.REDIS_PORT) }, session: { secret: 's' } });
      serveOnce(mw, async (s) => { await s.set('k', { n: 1 }); return s.get('k'); })
        .then((r) => { print('SERVED', r); print('CLOSED_AT', Date.now()); });
    `;
    const r = await runChild(script, { env: { REDIS_PORT: String(redis.port) } });
    const out = childOutput(r.stdout);
    const exitLag = out.CLOSED_AT ? Date.now() - out.CLOSED_AT : NaN;
    t.diagnostic(`child exited after ${r.ms} ms in all, ~${exitLag} ms after closing its server`);
    assert.equal(r.timedOut, false, `the child did not exit within 10 s: ${r.stdout} ${r.stderr}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(out.SERVED, { status: 200, body: { n: 1 } });
    assert.equal(out.UNHANDLED, undefined);
    assert.ok(exitLag < 3000, `exited ${exitLag} ms after closing its server`);
  });

  test('a process awaiting a session call with no other handle open gets the result before exiting', async () => {
    const script = `${CHILD_PRELUDE}
      const mw = altSession({ redis: { port: Number(process.env.REDIS_PORT) }, session: { secret: 's' } });
      let session;
      serveOnce(mw, async (s) => { session = s; return 'ok'; }).then(async (r) => {
        print('SERVED', r);
        // The server is closed: only the pending session calls remain.
        await session.set('k', { deep: [1, 2] });
        print('RESULT', await session.get('k'));
        print('MGET', await session.mget(['k', 'none']));
      });
    `;
    const r = await runChild(script, { env: { REDIS_PORT: String(redis.port) } });
    assert.equal(r.timedOut, false, r.stdout);
    assert.equal(r.code, 0, r.stderr);
    const out = childOutput(r.stdout);
    assert.deepEqual(out.SERVED, { status: 200, body: 'ok' });
    assert.deepEqual(out.RESULT, { deep: [1, 2] }, `the child exited before its call settled: ${r.stdout}`);
    assert.deepEqual(out.MGET, { k: { deep: [1, 2] }, none: null });
  });

  test('a bare script (no server ever) awaiting a session call prints its result', async () => {
    // The middleware driven by hand, as a script or job might.
    const script = `${CHILD_PRELUDE}
      const mw = altSession({ redis: { port: Number(process.env.REDIS_PORT) }, session: { secret: 's' } });
      const req = { headers: {}, socket: {} };
      const headers = {};
      const res = { getHeader: (n) => headers[n], setHeader: (n, v) => { headers[n] = v; }, headersSent: false };
      mw(req, res, async (err) => {
        if (err) throw err;
        await req.session.set('x', 42);
        print('RESULT', await req.session.get('x'));
      });
    `;
    const r = await runChild(script, { env: { REDIS_PORT: String(redis.port) } });
    assert.equal(r.timedOut, false, r.stdout);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(childOutput(r.stdout).RESULT, 42, `the child exited before its call settled: ${r.stdout}`);
  });

  for (const factory of ['altSession', 'altSession.mock']) {
    test(`${factory}: a callback that throws is an uncaught exception of its own; the rest of its batch is answered`, async () => {
      // Three calls in one tick share a batch; the first one's callback throws.
      const script = `${CHILD_PRELUDE}
        process.on('uncaughtException', (err) => print('UNCAUGHT', err.message));
        const mw = ${factory}({ redis: { port: Number(process.env.REDIS_PORT) }, session: { secret: 's' } });
        const req = { headers: {}, socket: {} };
        const headers = {};
        const res = { getHeader: (n) => headers[n], setHeader: (n, v) => { headers[n] = v; }, headersSent: false };
        mw(req, res, (err) => {
          if (err) throw err;
          const s = req.session;
          const thrower = s.set('a', 1, () => { throw new Error('thrown by a callback'); });
          s.set('b', 2, (err) => print('B', err ? err.code : 'written'));
          s.get('a', (err, value) => print('A', err ? err.code : value));
          thrower.then(() => print('PROMISE', 'resolved'), (e) => print('PROMISE', e.message));
        });
      `;
      const r = await runChild(script, { env: { REDIS_PORT: String(redis.port) } });
      assert.equal(r.timedOut, false, r.stdout);
      assert.equal(r.code, 0, r.stderr);
      const out = childOutput(r.stdout);
      assert.deepEqual([out.UNCAUGHT, out.B, out.A, out.PROMISE, out.UNHANDLED], ['thrown by a callback', 'written', 1, 'resolved', undefined], r.stdout);
    });
  }

  test('a process awaiting a call against a Redis that is down gets the error before exiting', async () => {
    const deadPort = await freePort();
    const script = `${CHILD_PRELUDE}
      // awaitTouch: false, so the route runs although recording the new session fails.
      const mw = altSession({ redis: { port: Number(process.env.DEAD_PORT) }, session: { secret: 's', awaitTouch: false } });
      let session;
      serveOnce(mw, async (s) => { session = s; return 'ok'; }).then(async () => {
        const start = Date.now();
        try { await session.get('k'); print('RESULT', 'resolved'); }
        catch (err) { print('ERROR', { code: err.code, ms: Date.now() - start }); }
      });
    `;
    const r = await runChild(script, { env: { DEAD_PORT: String(deadPort) } });
    assert.equal(r.timedOut, false, r.stdout);
    assert.equal(r.code, 0, r.stderr);
    const out = childOutput(r.stdout);
    assert.ok(out.ERROR, `the child exited before its call settled: ${r.stdout}`);
    assert.ok(DOWN_CODES.includes(out.ERROR.code), r.stdout);
    assert.ok(out.ERROR.ms < FAIL_FAST_MS);
  });

  test('a process awaiting a call against a frozen Redis gets ERR_SESSION_TIMEOUT before exiting', async () => {
    process.kill(redis.pid, 'SIGSTOP');
    try {
      const script = `${CHILD_PRELUDE}
        // awaitTouch: false, so the route runs although recording the new session times out.
        const mw = altSession({ redis: { port: Number(process.env.REDIS_PORT), commandTimeout: 300 }, session: { secret: 's', awaitTouch: false } });
        let session;
        serveOnce(mw, async (s) => { session = s; return 'ok'; }).then(async () => {
          const start = Date.now();
          try { await session.get('k'); print('RESULT', 'resolved'); }
          catch (err) { print('ERROR', { code: err.code, ms: Date.now() - start }); }
        });
      `;
      const r = await runChild(script, { env: { REDIS_PORT: String(redis.port) } });
      assert.equal(r.timedOut, false, r.stdout);
      assert.equal(r.code, 0, r.stderr);
      const out = childOutput(r.stdout);
      assert.ok(out.ERROR, `the child exited before its call settled: ${r.stdout}`);
      assert.equal(out.ERROR.code, 'ERR_SESSION_TIMEOUT', r.stdout);
      assert.ok(out.ERROR.ms < 1000, r.stdout);
      assert.ok(r.ms < 3000, `the child took ${r.ms} ms to exit`);
    } finally {
      process.kill(redis.pid, 'SIGCONT');
    }
  });

  test('await mw.close() resolves, later calls reject ERR_SESSION_CLOSED, and the process exits promptly', async (t) => {
    const script = `${CHILD_PRELUDE}
      const mw = altSession({ redis: { port: Number(process.env.REDIS_PORT) }, session: { secret: 's' } });
      let session;
      serveOnce(mw, async (s) => { session = s; await s.set('k', 1); return 'ok'; }).then(async (r) => {
        print('SERVED', r);
        // A call in flight when close() is called still finishes.
        const inFlight = session.get('k');
        const closed = await mw.close();
        print('CLOSE', closed === undefined ? 'undefined' : closed);
        print('IN_FLIGHT', await inFlight.then((v) => ({ value: v }), (e) => ({ code: e.code })));
        const after = await session.get('k').then((v) => ({ value: v }), (e) => ({ code: e.code, isError: e instanceof Error }));
        print('AFTER', after);
        session.set('k', 2, (err) => {
          print('CALLBACK', err && err.code);
          print('CLOSED_AT', Date.now());
        });
      });
    `;
    const r = await runChild(script, { env: { REDIS_PORT: String(redis.port) } });
    const out = childOutput(r.stdout);
    const exitLag = out.CLOSED_AT ? Date.now() - out.CLOSED_AT : NaN;
    t.diagnostic(`after close() the child exited ~${exitLag} ms later (${r.ms} ms in all)`);
    assert.equal(r.timedOut, false, r.stdout);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(out.SERVED, { status: 200, body: 'ok' });
    assert.equal(out.CLOSE, 'undefined');
    assert.deepEqual(out.IN_FLIGHT, { value: 1 });
    assert.deepEqual(out.AFTER, { code: 'ERR_SESSION_CLOSED', isError: true });
    assert.equal(out.CALLBACK, 'ERR_SESSION_CLOSED');
    assert.ok(exitLag < 2000, `exited ${exitLag} ms after close`);
    assert.equal(out.UNHANDLED, undefined);
  });

  test('in this process: close() (promise and callback) releases the Redis connection; requests then get ERR_SESSION_CLOSED', async () => {
    const mw = altSession({ redis: { port: redis.port }, session: { secret: 's' } });
    const app = await sessionApp(mw);
    const first = await request(app.origin, '/set?v=1');
    assert.equal(first.status, 200, first.body);
    const cookie = cookieHeader(first.setCookies);
    assert.ok((await otherClients(redis)) >= 1, 'the middleware holds a connection');

    await new Promise((resolve, reject) => mw.close((err) => (err ? reject(err) : resolve())));
    const res = await request(app.origin, '/get', { cookie });
    assert.equal(res.status, 500, res.body);
    assert.equal(res.json.code, 'ERR_SESSION_CLOSED');
    const fresh = await request(app.origin, '/roundtrip');
    assert.equal(fresh.status, 500, fresh.body);
    assert.equal(fresh.json.code, 'ERR_SESSION_CLOSED');

    // The connection goes away (allow the server a moment to notice).
    let clients;
    for (let i = 0; i < 20; i++) {
      clients = await otherClients(redis);
      if (clients === 0) break;
      await sleep(100);
    }
    assert.equal(clients, 0, 'redis-server still sees the closed middleware connected');
    await mw.close(); // a second close is harmless
  });
});

describe('password authentication', () => {
  let redis;

  before(async () => {
    redis = await privateRedis({ password: 'pw' });
  });

  const GOOD = {
    auth_pass: (r) => ({ port: r.port, auth_pass: 'pw' }),
    pass: (r) => ({ port: r.port, pass: 'pw' }),
    password: (r) => ({ port: r.port, password: 'pw' }),
    url: (r) => ({ url: r.url }),
    'url with db': (r) => ({ url: `${r.url}/0` }),
  };

  for (const [name, options] of Object.entries(GOOD)) {
    test(`redis.${name} authenticates and sessions round-trip`, async () => {
      const app = await sessionApp(middleware({ redis: options(redis), session: { secret: 's' } }));
      const first = await request(app.origin, '/set?v=secret-data');
      assert.equal(first.status, 200, first.body);
      const cookie = cookieHeader(first.setCookies);
      const second = await request(app.origin, '/get', { cookie });
      assert.equal(second.status, 200, second.body);
      assert.equal(second.json.v, 'secret-data');
      const stored = await withRedisClient(redis, (db) => db.command('HGET', `session:${first.json.id}`, 'v')); // AUTH pw
      assert.equal(stored, JSON.stringify('secret-data'));
    });
  }

  const BAD = {
    'a wrong password': (r) => ({ port: r.port, password: 'wrong' }),
    'a wrong auth_pass': (r) => ({ port: r.port, auth_pass: 'wrong' }),
    'a url with a wrong password': (r) => ({ url: `redis://:wrong@127.0.0.1:${r.port}` }),
  };

  for (const [name, options] of Object.entries(BAD)) {
    test(`${name} fails fast with ERR_SESSION_AUTH (no hang, no crash)`, async (t) => {
      const app = await sessionApp(middleware({ redis: options(redis), session: { secret: 's' } }));
      const start = Date.now();
      const res = await request(app.origin, '/roundtrip');
      const ms = Date.now() - start;
      t.diagnostic(`${name}: ${res.status} after ${ms} ms: ${res.body}`);
      assert.equal(res.status, 500, res.body);
      assert.equal(res.json.code, 'ERR_SESSION_AUTH', res.body);
      assert.ok(ms < FAIL_FAST_MS, `took ${ms} ms`);
      const session = app.lastSession;
      const cb = await callbackStyle(OPERATIONS.get, session);
      assert.equal(cb.err && cb.err.code, 'ERR_SESSION_AUTH');
      assert.ok(cb.ms < FAIL_FAST_MS);
    });
  }

  test('no password against a server that requires one fails fast with ERR_SESSION_AUTH, saying so', async (t) => {
    const app = await sessionApp(middleware({ redis: { port: redis.port }, session: { secret: 's' } }));
    const start = Date.now();
    const res = await request(app.origin, '/roundtrip');
    const ms = Date.now() - start;
    t.diagnostic(`no password: ${res.status} after ${ms} ms: ${res.body}`);
    assert.equal(res.status, 500, res.body);
    assert.equal(res.json.code, 'ERR_SESSION_AUTH', res.body);
    assert.match(res.json.message, /requires a password/);
    assert.ok(ms < FAIL_FAST_MS);
  });
});

test('no unhandledRejection happened anywhere in this file, and the process is alive', async () => {
  await sleep(100);
  assert.deepEqual(unhandled.map(String), []);
});
