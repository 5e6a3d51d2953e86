'use strict';

// The original alt-session@0.0.1's defects (README.md, "Migrating from
// alt-session 0.0.1", what changed on purpose: a badly signed cookie, ids,
// invalidate(), mock(), requiring the package), one test each. Every test here fails against
// the original; the comment on each says why.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { setTimeout: delay } = require('node:timers/promises');
const express = require('express');
const { useRedis } = require('./helpers/fixtures');
const { MODES, withSessionApp } = require('./helpers/session-server');
const { cookiesNamed, isClearing, signedSidCookie, CookieJar } = require('./helpers/http');

const SECRET = 'keyboard cat';
const redis = useRedis();

/** Runs `body(app)` with an app of ours that is closed afterwards. */
const withApp = (options, body) => withSessionApp(express, options, body);

test('1. badly signed cookies from two clients get two separate fresh sessions', async () => {
  // Original: cookie-parser sets req.signedCookies.sid = false for a bad
  // signature, `false == null` is false, so the id became `false`: both
  // clients shared the key `session:false` and read each other's data.
  await withApp({ redis: redis.server, ...MODES['cookie-parser(secret)'](SECRET) }, async (app) => {
    const alice = new CookieJar();
    const bob = new CookieJar();
    const forged = (id) => signedSidCookie(id, 'not the secret');
    const a = await app.run((s) => s.set('user', 'alice'), { jar: alice, cookie: forged('A'.repeat(43)) });
    const b = await app.run((s) => s.get('user'), { jar: bob, cookie: forged('B'.repeat(43)) });

    assert.equal(a.session.isNew, true);
    assert.equal(b.session.isNew, true);
    assert.notEqual(a.session.id, b.session.id);
    assert.equal(b.value, null, "bob does not see alice's data");
    assert.equal(cookiesNamed(b.setCookies).length, 1, 'bob gets a fresh cookie');
    assert.deepEqual(await redis.db.keys('*false*'), []);

    await app.run((s) => s.set('user', 'bob'), { jar: bob });
    assert.equal((await app.run((s) => s.get('user'), { jar: alice })).value, 'alice');
  });
});

test('2. ids are 256 bits from a CSPRNG, base64url: 43 chars, unique, not the Math.random shape', async () => {
  // Original: base64(sha256(62-letter Math.random string)) + 8 Math.random
  // alphanumerics: 52 chars with `+ / =`, matching ORIGINAL_SHAPE, never 43.
  const ORIGINAL_SHAPE = /^[A-Za-z0-9+/]{43}=[A-Za-z0-9]{8}$/;
  await withApp({ mock: true, session: { secret: SECRET } }, async (app) => {
    const ids = [];
    for (let batch = 0; batch < 20; batch++) {
      const responses = await Promise.all(Array.from({ length: 50 }, () => app.run()));
      ids.push(...responses.map((r) => r.session.id));
    }
    assert.equal(new Set(ids).size, 1000, 'no repeats');
    for (const id of ids) {
      assert.match(id, /^[A-Za-z0-9_-]{43}$/);
      assert.doesNotMatch(id, ORIGINAL_SHAPE);
      const bytes = Buffer.from(id, 'base64url');
      assert.equal(bytes.length, 32, '256 bits');
      assert.equal(bytes.toString('base64url'), id, 'canonical encoding');
    }
    // 43,000 symbols: every one of the 64 base64url letters shows up (a
    // narrower alphabet or a stuck source would not).
    assert.equal(new Set(ids.join('')).size, 64);
  });
});

test('3. invalidate() clears the cookie with the Domain and Path it was set with', async () => {
  // Original: res.clearCookie('sid') sends `Path=/` and no Domain, so a
  // cookie set with a Domain is a different cookie and stays in the browser.
  const session = { domain: 'example.test', path: '/app' };
  await withApp({ redis: redis.server, ...MODES['cookie-parser(secret)'](SECRET, session) }, async (app) => {
    const jar = new CookieJar();
    const [set] = cookiesNamed((await app.run((s) => s.set('user', 'ann'), { jar })).setCookies);
    assert.equal(set.attributes.domain, 'example.test');
    assert.equal(set.attributes.path, '/app');

    const { setCookies, session: s } = await app.run((s) => s.invalidate(), { jar });
    const [cleared] = cookiesNamed(setCookies);
    assert.ok(cleared && isClearing(cleared), `a clearing cookie: ${setCookies}`);
    assert.equal(cleared.attributes.domain, 'example.test');
    assert.equal(cleared.attributes.path, '/app');
    assert.equal(await redis.db.exists(`session:${s.id}`), false);
  });
});

test('4. mock() sessions are isolated per visitor and expire after tti idle seconds (tti 1, idle 2.4 s)', async () => {
  // Original: mock() kept one module-global `_keys` bag for every session
  // (bob read alice's data, invalidate() wiped everyone's) and never expired.
  await withApp({ mock: true, session: { secret: SECRET, tti: 1 } }, async (app) => {
    const alice = new CookieJar();
    const bob = new CookieJar();
    const idle = new CookieJar();
    await app.run((s) => s.set('user', 'alice'), { jar: alice });
    assert.equal((await app.run((s) => s.get('user'), { jar: bob })).value, null);
    await app.run((s) => s.set('user', 'bob'), { jar: bob });
    assert.equal((await app.run((s) => s.get('user'), { jar: alice })).value, 'alice');

    await app.run((s) => s.invalidate(), { jar: alice });
    assert.equal((await app.run((s) => s.get('user'), { jar: bob })).value, 'bob', "alice's logout kept bob's session");

    await app.run((s) => s.set('user', 'idle'), { jar: idle });
    for (let i = 1; i <= 6; i++) {
      await delay(400); // bob keeps visiting: each request refreshes his idle timeout
      assert.equal((await app.run((s) => s.get('user'), { jar: bob })).value, 'bob', `bob still there after ${i * 400} ms`);
    }
    const expired = await app.run((s) => s.get('user'), { jar: idle });
    assert.equal(expired.session.isNew, false, 'same (signed) cookie');
    assert.equal(expired.value, null, 'idle for over tti: the data is gone');
  });
});

test("5. require('alt-session') works without the `async` package", () => {
  // Original: mock.js does `require('async')`, a package it never declared,
  // so `require('alt-session')` threw MODULE_NOT_FOUND wherever async was absent.
  const script = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request === 'async' || request.startsWith('async/')) {
        const err = new Error("Cannot find module '" + request + "'");
        err.code = 'MODULE_NOT_FOUND';
        throw err;
      }
      return resolve.call(this, request, ...rest);
    };
    const outcome = (load) => { try { load(); return 'loaded'; } catch (err) { return err.code; } };
    const [ours, original] = process.argv.slice(1);
    const report = {
      async: outcome(() => require('async')),
      original: outcome(() => require(original)),
      ours: outcome(() => require(ours)),
    };
    const altSession = require(ours);
    const mw = altSession.mock({ session: { secret: 's' } });
    const headers = {};
    const res = { getHeader: (n) => headers[n.toLowerCase()], setHeader: (n, v) => (headers[n.toLowerCase()] = v) };
    const req = { headers: {}, socket: {} };
    mw(req, res, async (err) => {
      await req.session.set('k', [1, 2]);
      report.value = await req.session.get('k');
      report.cookie = /^sid=s%3A/.test(headers['set-cookie']);
      report.error = err || null;
      await mw.close();
      console.log(JSON.stringify(report));
    });
  `;
  const ours = path.join(__dirname, '..', 'index.js');
  const original = require.resolve('alt-session-original');
  const output = execFileSync(process.execPath, ['-e', script, ours, original], { encoding: 'utf8', timeout: 10_000 });
  assert.deepEqual(JSON.parse(output), {
    async: 'MODULE_NOT_FOUND', // the hook works
    original: 'MODULE_NOT_FOUND', // and shows the original's defect
    ours: 'loaded',
    value: [1, 2],
    cookie: true,
    error: null,
  });
});
