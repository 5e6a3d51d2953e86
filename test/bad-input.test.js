'use strict';

// Bad input: every bad argument gets an Error with a stable code (through the
// callback and the promise), writes nothing, and never raises an unhandled
// rejection; bad options throw ERR_SESSION_CONFIG at once; bad cookies start
// a fresh session and never reach a Redis key.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const cookieParser = require('cookie-parser');
const { setTimeout: delay } = require('node:timers/promises');
const altSession = require('..');
const { useRedis, recordUnhandledRejections } = require('./helpers/fixtures');
const { MODES, sessionServer, startSessionApp } = require('./helpers/session-server');
const { cookiesNamed, unsignSid, signedSidCookie, CookieJar } = require('./helpers/http');

const unhandled = recordUnhandledRejections();
const redis = useRedis();

const SECRET = 'keyboard cat';
const NEW_ID = /^[A-Za-z0-9_-]{43}$/;

const isArgumentError = (err) => err instanceof Error && err.code === 'ERR_SESSION_ARGUMENT';

/** `session[method](...args)` must fail with ERR_SESSION_ARGUMENT through the callback, its promise, and without a callback. */
async function assertArgumentError(session, method, args) {
  const label = `${method}(${args.map(describeArg).join(', ')})`;
  let callbackError;
  const withCallback = session[method](...args, (err) => (callbackError = err));
  await assert.rejects(withCallback, isArgumentError, `${label} with a callback: promise`);
  await delay(0);
  assert.ok(isArgumentError(callbackError), `${label}: callback got ${callbackError}`);
  await assert.rejects(session[method](...args), isArgumentError, `${label} without a callback`);
}

function describeArg(value) {
  if (typeof value === 'bigint') return `${value}n`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return 'a cyclic object';
  }
}

describe('bad arguments to session methods', () => {
  let app;
  let session;
  let key;
  before(async () => {
    app = await startSessionApp(express, { redis: redis.server, session: { secret: SECRET } });
    ({ session } = await app.run((s) => s.set('existing', 'value')));
    key = `session:${session.id}`;
  });
  after(() => app.close());

  const cyclic = { name: 'loop' };
  cyclic.self = cyclic;
  const badKeys = ['', 1, null, undefined, {}, [], true];
  const badKeyLists = [1, {}, null, undefined, ['a', 1], ['a', ''], [null], ''];

  const cases = {
    'get with a non-string or empty key': badKeys.map((k) => ['get', [k]]),
    'set with a non-string or empty key': badKeys.map((k) => ['set', [k, 1]]),
    'mget with a non-array non-string, or a list holding a bad key': badKeyLists.map((k) => ['mget', [k]]),
    'remove with a non-array non-string, or a list holding a bad key': badKeyLists.map((k) => ['remove', [k]]),
    'mset with a non-object, or an empty key': [null, [], 'str', 42, undefined, { '': 1 }].map((v) => ['mset', [v]]),
    'set with a value JSON cannot encode (BigInt, cyclic)': [1n, cyclic].map((v) => ['set', ['a', v]]),
    'mset with one value JSON cannot encode writes none of its fields': [1n, cyclic].map((v) => ['mset', [{ fine: 1, bad: v, existing: 'overwritten?' }]]),
  };

  for (const [name, calls] of Object.entries(cases)) {
    test(`${name}: ERR_SESSION_ARGUMENT, nothing written`, async () => {
      const before = await redis.db.snapshot();
      assert.deepEqual(await redis.db.sessionData(key), { existing: '"value"' });
      for (const [method, args] of calls) await assertArgumentError(session, method, args);
      assert.deepEqual(await redis.db.snapshot(), before);
    });
  }

  test('a failing call with no callback that nobody awaits raises no unhandledRejection', async () => {
    const { status } = await app.run((s) => {
      s.set('', 1);
      s.get(null);
      s.mset(null);
      s.mget(42);
      s.remove({});
      s.set('a', 1n);
      s.mset({ '': 1 });
    });
    assert.equal(status, 200);
    await delay(100);
    assert.deepEqual(unhandled, []);
  });
});

describe('bad options: the factory throws ERR_SESSION_CONFIG synchronously', () => {
  const badOptions = {
    'negative tti': () => ({ redis: redis.server.options, session: { tti: -1 } }),
    "tti 'abc'": () => ({ redis: redis.server.options, session: { tti: 'abc' } }),
    'tti 1.5': () => ({ redis: redis.server.options, session: { tti: 1.5 } }),
    'port 70000': () => ({ redis: { host: '127.0.0.1', port: 70000 } }),
    "port 'abc'": () => ({ redis: { host: '127.0.0.1', port: 'abc' } }),
    'session a number': () => ({ redis: redis.server.options, session: 5 }),
    'session a string': () => ({ redis: redis.server.options, session: 'yes' }),
    "secret ''": () => ({ redis: redis.server.options, session: { secret: '' } }),
  };
  for (const [factoryName, factory] of [
    ['altSession', altSession],
    ['altSession.mock', altSession.mock],
  ]) {
    for (const [name, options] of Object.entries(badOptions)) {
      test(`${factoryName}: ${name}`, async () => {
        let mw;
        let error;
        try {
          mw = factory(options());
        } catch (err) {
          error = err;
        }
        if (mw) await mw.close();
        assert.ok(error instanceof Error, 'threw an Error');
        assert.equal(error.code, 'ERR_SESSION_CONFIG', error.message);
      });
    }
  }
});

test('no secret anywhere (no session.secret, cookie-parser without one): ERR_SESSION_SECRET through next(err), and said once as a process warning', async () => {
  const warnings = [];
  const onWarning = (warning) => warnings.push(warning);
  process.on('warning', onWarning);
  const mw = altSession({ redis: redis.server.options });
  for (const middlewares of [[mw], [cookieParser(), mw]]) {
    const server = await sessionServer(express, middlewares);
    try {
      const r = await server.run();
      assert.equal(r.status, 500);
      assert.equal(r.body, 'ERR_SESSION_SECRET');
      assert.equal(r.session, undefined, 'the route did not run');
      assert.ok(r.middlewareError instanceof Error);
    } finally {
      await server.close();
    }
  }
  await mw.close();
  await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on a tick of their own
  process.off('warning', onWarning);
  const said = warnings.filter((w) => w.code === 'ERR_SESSION_SECRET');
  assert.equal(said.length, 1, 'once, for two failing requests');
  assert.match(said[0].message, /session\.secret.*cookie-parser/);
});

for (const [modeName, modeOptions] of Object.entries(MODES)) {
  describe(`bad sid cookies start a fresh session and never reach Redis (${modeName})`, () => {
    let app;
    before(async () => {
      app = await startSessionApp(express, { redis: redis.server, ...modeOptions(SECRET, { prefix: 'bad' }) });
    });
    after(() => app.close());

    const realId = 'A'.repeat(43);
    const realCookie = signedSidCookie(realId, SECRET);
    const badCookies = {
      'unsigned (sid=abc)': 'sid=abc',
      'unsigned, of a valid id shape': `sid=${realId}`,
      's: prefix without a signature': `sid=s%3A${realId}`,
      'signed with another secret': signedSidCookie(realId, 'another secret'),
      'signature tampered': realCookie.slice(0, -3) + (realCookie.endsWith('AAA') ? 'BBB' : 'AAA'),
      'id tampered': realCookie.replace('AAAA', 'AAAB'),
      'malformed percent-encoding': 'sid=s%3A%E0%A4%A.abc',
      empty: 'sid=',
      'unterminated quote': 'sid="s%3Aabc',
      'oversized (9 KB), correctly signed': signedSidCookie('A'.repeat(9 * 1024), SECRET),
      'false, correctly signed': signedSidCookie('false', SECRET),
      'key syntax evil:key, correctly signed': signedSidCookie('evil:key', SECRET),
      'key syntax in a 43-char id, correctly signed': signedSidCookie(`evil:${'k'.repeat(38)}`, SECRET),
      'hash tag and space in the id, correctly signed': signedSidCookie(`{tag} ${'k'.repeat(38)}`, SECRET),
      'NUL byte in the id, correctly signed': signedSidCookie(`${'k'.repeat(38)}\u0000evil`, SECRET),
      'non-ASCII id, correctly signed': signedSidCookie('ü'.repeat(43), SECRET),
      'a valid cookie in a Cookie header over 8 KiB': `${realCookie}; pad=${'x'.repeat(9 * 1024)}`,
      'fifty sid cookies, the first unsigned': Array.from({ length: 50 }, (_, i) => (i ? realCookie : 'sid=abc')).join('; '),
    };

    for (const [name, cookie] of Object.entries(badCookies)) {
      test(name, async () => {
        const keysBefore = await redis.db.keys('bad:*');
        const jar = new CookieJar();
        const r = await app.run((s) => s.set('visited', true), { cookie, jar });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.error, undefined);
        assert.equal(r.session.isNew, true);
        assert.match(r.session.id, NEW_ID);
        const [sid] = cookiesNamed(r.setCookies);
        assert.ok(sid, 'a new Set-Cookie');
        assert.equal(unsignSid(sid.value, SECRET), r.session.id);

        const created = (await redis.db.keys('bad:*')).filter((k) => !keysBefore.includes(k));
        assert.deepEqual(created, [`bad:${r.session.id}`], 'only the fresh session has a key');
        assert.deepEqual(await redis.db.keys('*evil*'), []);
        assert.deepEqual(await redis.db.keys('*false*'), []);

        // The fresh cookie works: the browser is back in its new session.
        const back = await app.run((s) => s.get('visited'), { jar });
        assert.deepEqual([back.session.isNew, back.session.id, back.value], [false, r.session.id, true]);
      });
    }
  });
}

test('no unhandledRejection anywhere in this file', async () => {
  await delay(50);
  assert.deepEqual(unhandled, []);
});
