'use strict';

// Secret rotation: with `session.secret: [current, ...retired]` (or
// `cookie-parser([current, ...retired])`) the first secret signs new cookies
// and every listed one verifies; a cookie signed by a retired secret keeps
// its session and is re-signed with the current secret on that response.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { useRedis } = require('./helpers/fixtures');
const { startSessionApp } = require('./helpers/session-server');
const { cookiesNamed, unsignSid, signedSidCookie } = require('./helpers/http');

const CURRENT = 'current secret';
const RETIRED = 'retired secret';

const redis = useRedis();

const SETUPS = {
  'session.secret array': () => ({ session: { secret: [CURRENT, RETIRED] } }),
  'cookie-parser(secrets[])': () => ({ cookieParserSecret: [CURRENT, RETIRED] }),
};

for (const [name, setup] of Object.entries(SETUPS)) {
  describe(name, () => {
    let app;
    before(async () => {
      app = await startSessionApp(express, { redis: redis.server, ...setup() });
    });
    after(() => app.close());

    test('new cookies are signed with the first secret', async () => {
      const { session, setCookies } = await app.run();
      const [cookie] = cookiesNamed(setCookies);
      assert.equal(unsignSid(cookie.value, CURRENT), session.id);
      assert.equal(unsignSid(cookie.value, RETIRED), false);
    });

    test('a cookie signed by a retired secret keeps its session and is re-signed', async () => {
      const { session } = await app.run((s) => s.set('user', 'ann'));
      const oldCookie = signedSidCookie(session.id, RETIRED);
      const r = await app.run((s) => s.get('user'), { cookie: oldCookie });
      assert.deepEqual([r.session.id, r.session.isNew, r.value], [session.id, false, 'ann']);
      const [resigned] = cookiesNamed(r.setCookies);
      assert.ok(resigned, 'the response re-signs the cookie');
      assert.equal(unsignSid(resigned.value, CURRENT), session.id);
    });

    test('a cookie signed by the current secret is not re-sent', async () => {
      const { session } = await app.run((s) => s.set('user', 'bob'));
      const r = await app.run((s) => s.get('user'), { cookie: signedSidCookie(session.id, CURRENT) });
      assert.deepEqual([r.session.id, r.value], [session.id, 'bob']);
      assert.deepEqual(cookiesNamed(r.setCookies), []);
    });

    test('a cookie signed by an unknown secret starts a fresh session', async () => {
      const { session } = await app.run((s) => s.set('user', 'eve'));
      const r = await app.run((s) => s.get('user'), { cookie: signedSidCookie(session.id, 'unknown') });
      assert.equal(r.session.isNew, true);
      assert.notEqual(r.session.id, session.id);
      assert.equal(r.value, null);
    });
  });
}
