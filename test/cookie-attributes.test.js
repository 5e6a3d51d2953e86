'use strict';

// The session cookie's attributes: name, path, domain, httpOnly, sameSite and
// secure (including 'auto', which follows Express's req.secure and so its
// `trust proxy` setting), and invalidate() clearing the cookie with the same
// name, path and domain it was set with (a different one would leave it).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { withSessionApp } = require('./helpers/session-server');
const { listen, request, cookiesNamed, isClearing, CookieJar } = require('./helpers/http');

const SECRET = 'attributes';
const redis = useRedis();

/** Runs `body(app)` with an app on the test Redis and these session options. */
const withApp = (session, body) => withSessionApp(express, { redis: redis.server, session: { secret: SECRET, ...session } }, body);

describe('cookie attributes', () => {
  test('defaults: sid, Path=/, HttpOnly, SameSite=Lax, no Secure, no Domain, no expiry', () =>
    withApp({}, async (app) => {
      const [cookie] = cookiesNamed((await app.run()).setCookies);
      assert.deepEqual(cookie.attributes, { path: '/', httponly: true, samesite: 'Lax' });
    }));

  test('name, path, domain, httpOnly: false and sameSite: strict', () =>
    withApp({ name: 'app.sid', path: '/app', domain: 'example.test', httpOnly: false, sameSite: 'strict' }, async (app) => {
      const { setCookies } = await app.run();
      assert.deepEqual(cookiesNamed(setCookies), [], 'no cookie under the default name');
      const [cookie] = cookiesNamed(setCookies, 'app.sid');
      assert.deepEqual(cookie.attributes, { domain: 'example.test', path: '/app', samesite: 'Strict' });
    }));

  test('sameSite: false sends no SameSite; sameSite none needs secure', () =>
    withApp({ sameSite: false }, async (app) => {
      const [cookie] = cookiesNamed((await app.run()).setCookies);
      assert.equal(cookie.attributes.samesite, undefined);
      assert.throws(() => altSession.mock({ session: { secret: SECRET, sameSite: 'none' } }), {
        code: 'ERR_SESSION_CONFIG',
      });
      const none = altSession.mock({ session: { secret: SECRET, sameSite: 'none', secure: true } });
      return none.close();
    }));

  test('a custom cookie name carries the session across requests', () =>
    withApp({ name: 'app.sid' }, async (app) => {
      const jar = new CookieJar();
      const { session } = await app.run((s) => s.set('n', 1), { jar });
      const again = await app.run((s) => s.get('n'), { jar });
      assert.deepEqual([again.session.id, again.value], [session.id, 1]);
    }));

  test('invalidate clears the cookie with its name, path and domain', () =>
    withApp({ name: 'app.sid', path: '/app', domain: 'example.test', secure: true }, async (app) => {
      const jar = new CookieJar();
      await app.run((s) => s.set('n', 1), { jar });
      const { setCookies } = await app.run((s) => s.invalidate(), { jar });
      const [cleared] = cookiesNamed(setCookies, 'app.sid');
      assert.ok(isClearing(cleared));
      assert.equal(cleared.attributes.path, '/app');
      assert.equal(cleared.attributes.domain, 'example.test');
      assert.equal(cleared.attributes.secure, true);
    }));
});

describe("secure: 'auto' follows req.secure (Express's trust proxy)", () => {
  let server;
  let mw;
  before(async () => {
    mw = altSession({ redis: redis.server.options, session: { secret: SECRET, secure: 'auto' } });
    const app = express();
    app.set('trust proxy', 'loopback');
    app.use(mw);
    app.get('/', (req, res) => res.send(String(req.secure)));
    server = await listen(app);
  });
  after(async () => {
    await server.close();
    await mw.close();
  });

  test('plain HTTP: no Secure', async () => {
    const res = await request(server.origin, '/');
    assert.equal(res.body, 'false');
    assert.equal(cookiesNamed(res.setCookies)[0].attributes.secure, undefined);
  });

  test('behind a trusted proxy that says https: Secure', async () => {
    const res = await request(server.origin, '/', { headers: { 'x-forwarded-proto': 'https' } });
    assert.equal(res.body, 'true');
    assert.equal(cookiesNamed(res.setCookies)[0].attributes.secure, true);
  });
});
