'use strict';

// A randomized test of the JavaScript API: every method of req.session gets
// every kind of value, in every argument position, with and without a
// callback, on Redis and on the memory store. Each call must return a promise
// that settles in time, reject only with an Error carrying an ERR_SESSION_*
// code, call its callback exactly once, and leave no unhandled rejection and
// no crashed process. The seed is fixed, so a failure replays.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { recordUnhandledRejections } = require('./helpers/fixtures');
const { passThrough } = require('./helpers/session-server');

const redis = useRedis();
const unhandled = recordUnhandledRejections();

const CALLS = 20000;
/** Each method and how many arguments come before its callback. */
const ARITY = { get: 1, mget: 1, getAll: 0, set: 2, mset: 1, remove: 1, incr: 2, touch: 0, invalidate: 0, regenerate: 0 };
const METHODS = Object.keys(ARITY);

/** A small deterministic PRNG (mulberry32). */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function values(next) {
  const cyclic = { a: 1 };
  cyclic.self = cyclic;
  const pick = (list) => list[Math.floor(next() * list.length)];
  return () =>
    pick([
      undefined,
      null,
      true,
      false,
      0,
      -1,
      1.5,
      NaN,
      Infinity,
      2 ** 53,
      10n,
      Symbol('s'),
      '',
      'key',
      'k'.repeat(300),
      '\u0000',
      'ünï',
      '__proto__',
      'constructor',
      [],
      ['a', 'b'],
      ['a', 1],
      [null],
      {},
      { a: 1 },
      { b: undefined },
      { big: 10n },
      cyclic,
      () => 1,
      new Date(0),
      new Map([[1, 2]]),
      Buffer.from('x'),
      Object.create(null),
    ]);
}

async function openSession(mw) {
  return (await passThrough(mw)).session;
}

/** One call with random arguments; resolves what happened. */
function call(session, method, args, withCallback) {
  return new Promise((resolve) => {
    let callbacks = 0;
    const callback = (err) => {
      callbacks++;
      if (callbacks > 1) resolve({ problem: `${method}: callback called twice` });
      void err;
    };
    let promise;
    try {
      promise = session[method](...args, ...(withCallback ? [callback] : []));
    } catch (err) {
      return resolve({ problem: `${method} threw synchronously: ${err && err.message}` });
    }
    if (!promise || typeof promise.then !== 'function') {
      return resolve({ problem: `${method} returned no promise` });
    }
    const timer = setTimeout(() => resolve({ problem: `${method} did not settle in 3 s` }), 3000);
    promise.then(
      () => settle(),
      (err) => settle(err instanceof Error && /^ERR_SESSION_/.test(err.code) ? null : `${method} rejected with ${err && err.code} ${err}`)
    );
    function settle(problem) {
      clearTimeout(timer);
      // Let a callback (called on the next tick) arrive before judging it.
      setImmediate(() => {
        if (problem) return resolve({ problem });
        if (withCallback && callbacks !== 1) return resolve({ problem: `${method}: callback called ${callbacks} times` });
        resolve({});
      });
    }
  });
}

for (const backend of ['redis', 'memory']) {
  test(`${CALLS} random calls on ${backend}: no throw, no hang, no stray rejection`, async () => {
    const options = { redis: redis.server.options, session: { secret: 'fuzz', maxFields: 50 } };
    const mw = backend === 'redis' ? altSession(options) : altSession.mock(options);
    const next = random(backend === 'redis' ? 1 : 2);
    const value = values(next);
    const problems = [];
    try {
      let session = await openSession(mw);
      for (let i = 0; i < CALLS; i += 10) {
        // Ten calls at a time, so they share batches.
        const batch = Array.from({ length: 10 }, () => {
          const method = METHODS[Math.floor(next() * METHODS.length)];
          // With a callback, the arguments before it; without, any number of them.
          const withCallback = next() < 0.5;
          const count = withCallback ? ARITY[method] : Math.floor(next() * 4);
          return call(session, method, Array.from({ length: count }, value), withCallback);
        });
        for (const outcome of await Promise.all(batch)) if (outcome.problem) problems.push(outcome.problem);
        if (next() < 0.05) session = await openSession(mw);
      }
      // The session still works after all that.
      await session.set('ok', { fine: true });
      assert.deepEqual(await session.get('ok'), { fine: true });
    } finally {
      await mw.close();
    }
    assert.deepEqual(problems.slice(0, 10), []);
    assert.deepEqual(unhandled.map(String), []);
  });
}
