'use strict';

// Limits over real HTTP, on Redis and on the memory store: maxValueBytes and
// maxFields refuse a write with ERR_SESSION_TOO_LARGE and write nothing, and
// maxLifetime ends a session at its deadline however often it is used.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: delay } = require('node:timers/promises');
const express = require('express');
const { useRedis } = require('./helpers/fixtures');
const { withSessionApp } = require('./helpers/session-server');
const { CookieJar, cookiesNamed } = require('./helpers/http');

const redis = useRedis();
const STORES = {
  Redis: (session) => ({ redis: redis.server, session: { secret: 'limits', ...session } }),
  memory: (session) => ({ mock: true, session: { secret: 'limits', ...session } }),
};

for (const [store, options] of Object.entries(STORES)) {
  describe(store, () => {
    test('a value over maxValueBytes is refused and nothing is written', () =>
      withSessionApp(express, options({ maxValueBytes: 100 }), async (app) => {
        const jar = new CookieJar();
        await app.run((s) => s.set('small', 'x'.repeat(90)), { jar });
        const r = await app.run((s) => s.mset({ other: 1, big: 'x'.repeat(200) }), { jar });
        assert.equal(r.error && r.error.code, 'ERR_SESSION_TOO_LARGE');
        const all = await app.run((s) => s.getAll(), { jar });
        assert.deepEqual(all.value, { small: 'x'.repeat(90) });
      }));

    test('a write past maxFields is refused and nothing is written', () =>
      withSessionApp(express, options({ maxFields: 3 }), async (app) => {
        const jar = new CookieJar();
        await app.run((s) => s.mset({ a: 1, b: 2 }), { jar });
        const over = await app.run((s) => s.mset({ b: 20, c: 3, d: 4 }), { jar });
        assert.equal(over.error && over.error.code, 'ERR_SESSION_TOO_LARGE');
        const incr = await app.run((s) => s.mset({ c: 3 }).then(() => s.incr('d')), { jar });
        assert.equal(incr.error && incr.error.code, 'ERR_SESSION_TOO_LARGE');
        const all = await app.run((s) => s.getAll(), { jar });
        assert.deepEqual(all.value, { a: 1, b: 2, c: 3 }, 'nothing of the refused writes');
      }));

    test('maxLifetime ends a session at its deadline, whatever the activity', () =>
      withSessionApp(express, options({ tti: 60, maxLifetime: 2 }), async (app) => {
        const jar = new CookieJar();
        const { session } = await app.run((s) => s.set('user', 'ann'), { jar });
        for (let i = 0; i < 3; i++) {
          await delay(500);
          const r = await app.run((s) => s.get('user'), { jar });
          assert.deepEqual([r.session.id, r.value], [session.id, 'ann'], 'alive, and refreshed');
        }
        await delay(800); // 2.3 s after creation
        const late = await app.run((s) => s.get('user'), { jar });
        assert.equal(late.value, null, 'ended at 2 s despite the refreshes');
        const write = await app.run((s) => s.set('user', 'eve'), { jar });
        assert.notEqual(write.session.id, session.id, 'the ended session is not revived');
        assert.equal(cookiesNamed(write.setCookies).length, 1);
      }));
  });
}
