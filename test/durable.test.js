'use strict';

// Durable writes (redis.waitReplicas): on one server with a replica, every
// write is acknowledged only once the replica has it; without a replica in
// sync, writes fail with ERR_SESSION_NOT_REPLICATED within waitTimeout, and
// reads, idle refreshes and new visitors go on.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { startRedis } = require('../__test__/servers/redis');
const { connectRedis, replicaOnline } = require('../__test__/servers/redis-client');
const { withSessionApp } = require('./helpers/session-server');
const { CookieJar } = require('./helpers/http');
const { until } = require('../__test__/servers/sentinel');

const SECRET = 'durable writes';
const WAIT_TIMEOUT_MS = 200;

/** Resolves what a promise settled with: `['ok', value]` or `['error', code]`. */
const outcome = (promise) =>
  promise.then(
    (value) => ['ok', value],
    (err) => ['error', err.code]
  );

describe('redis.waitReplicas on one server', () => {
  let primary;
  let replica;
  let replicaDb;
  let primaryDb;
  before(async () => {
    primary = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] });
    replicaDb = connectRedis(replica);
    primaryDb = connectRedis(primary);
    await until(() => replicaOnline(primaryDb), 10000, 'the replica in sync');
  });
  after(async () => {
    await Promise.all([replicaDb.quit(), primaryDb.quit()]);
    await Promise.all([replica.stop(), primary.stop()]);
  });

  const options = () => ({ redis: { ...primary.options, waitReplicas: 1, waitTimeout: WAIT_TIMEOUT_MS }, session: { secret: SECRET } });

  test('every write is on the replica when it is acknowledged', async () => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      const r = await app.run(
        async (s) => {
          await s.mset({ a: 1, b: 2 });
          const n = await s.incr('n', 3);
          await s.remove('b');
          await s.login('ann');
          return n;
        },
        { jar }
      );
      assert.equal(r.error, undefined, r.error && r.error.message);
      assert.equal(r.value, 3);
      // Read straight off the replica, the moment the calls were acknowledged.
      const held = await replicaDb.sessionData(`session:${r.session.id}`);
      assert.deepEqual({ a: held.a, b: held.b, n: held.n, user: held['\0user'] }, { a: '1', b: undefined, n: '3', user: 'ann' });
      assert.ok((await replicaDb.command('ZSCORE', 'session:user:ann', r.session.id)) !== null, 'the index entry too');
    });
  });

  test('without the replica, writes fail with ERR_SESSION_NOT_REPLICATED within waitTimeout; reads and refreshes go on', async (t) => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      await app.run((s) => s.set('kept', 1), { jar });
      await replicaDb.command('REPLICAOF', 'NO', 'ONE');
      try {
        const r = await app.run(
          async (s) => {
            const start = Date.now();
            const write = await outcome(s.set('x', 1));
            const ms = Date.now() - start;
            return { write, ms, read: await s.getAll(), err: await s.set('y', 1).catch((err) => err.message) };
          },
          { jar }
        );
        assert.equal(r.middlewareError, undefined, 'the idle refresh is not confirmed: the request runs');
        t.diagnostic(`an unconfirmed write failed after ${r.value.ms} ms: ${r.value.err}`);
        assert.deepEqual(r.value.write, ['error', 'ERR_SESSION_NOT_REPLICATED']);
        assert.ok(r.value.ms >= WAIT_TIMEOUT_MS - 20 && r.value.ms < WAIT_TIMEOUT_MS + 500, `${r.value.ms} ms`);
        assert.match(r.value.err, /may be lost/);
        // Applied on the primary, unconfirmed: the caller was told its outcome is unknown.
        assert.deepEqual(r.value.read, { kept: 1, x: 1 });
        const visitor = await app.run(() => {});
        assert.equal(visitor.status, 200, 'a new visitor is recorded without waiting for replicas');
      } finally {
        await replicaDb.command('REPLICAOF', '127.0.0.1', String(primary.port));
        await until(() => replicaOnline(primaryDb), 10000, 'the replica in sync again');
      }
    });
  });
});
