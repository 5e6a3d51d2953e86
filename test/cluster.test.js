'use strict';

// Redis Cluster: 3 primaries and 3 replicas on loopback. Sessions spread over
// the primaries under the usual `prefix:id` keys; every method keeps its
// guarantees; regenerate() moves sessions across slots; a slot moved while the
// app runs (MOVED / ASK) and a primary killed (failover) are both served
// through, with no restart.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { setTimeout: delay } = require('node:timers/promises');
const { startCluster, slotOf } = require('../__test__/servers/cluster');
const { noTls } = require('../__test__/servers/redis');
const { until } = require('../__test__/servers/sentinel');
const { withSessionApp } = require('./helpers/session-server');
const { CookieJar, signedSidCookie } = require('./helpers/http');
const { makeCertificates } = require('../__test__/servers/certificates');

const SECRET = 'cluster test';

describe('Redis Cluster', () => {
  let cluster;
  let options;
  before(async () => {
    cluster = await startCluster();
    options = () => ({ redis: { cluster: { nodes: cluster.nodes.slice(0, 2) }, commandTimeout: 1000 }, session: { secret: SECRET } });
  });
  after(() => cluster.stop());

  /** The node's raw client that holds `key` now (redis@3, no routing). */
  async function holder(key) {
    const primary = await cluster.primaryOf(slotOf(key));
    return cluster.admin(primary.port);
  }

  test('100 sessions written through Express spread over the 3 primaries and all read back', async () => {
    await withSessionApp(express, options(), async (app) => {
      const sessions = [];
      for (let i = 0; i < 100; i++) {
        const jar = new CookieJar();
        const r = await app.run((s) => s.set('i', i), { jar });
        assert.equal(r.error, undefined, r.error && r.error.message);
        sessions.push({ jar, id: r.session.id, i });
      }
      const primaries = new Set();
      for (const { id, jar, i } of sessions) {
        const key = `session:${id}`;
        const db = await holder(key);
        assert.deepEqual(await db.sessionData(key), { i: String(i) }, 'stored as on one server, under prefix:id');
        primaries.add((await cluster.primaryOf(slotOf(key))).port);
        assert.equal((await app.run((s) => s.get('i'), { jar })).value, i);
      }
      assert.equal(primaries.size, 3, 'the sessions are on every primary');
    });
  });

  test('every method works on a cluster, with the guarantees of one server', async () => {
    await withSessionApp(express, { ...options(), session: { secret: SECRET, maxLifetime: 3600, maxFields: 3 } }, async (app) => {
      const jar = new CookieJar();
      const r = await app.run(
        async (s) => {
          await s.mset({ a: 1, b: { c: [2] } });
          const tooMany = await s.mset({ d: 1, e: 2 }).catch((err) => err.code);
          await s.remove('b');
          const n = await s.incr('n', 5);
          await s.touch();
          return { tooMany, n, get: await s.get('a'), mget: await s.mget(['a', 'n', 'zz']), all: await s.getAll() };
        },
        { jar }
      );
      assert.equal(r.error, undefined, r.error && r.error.message);
      assert.deepEqual(r.value, { tooMany: 'ERR_SESSION_TOO_LARGE', n: 5, get: 1, mget: { a: 1, n: 5, zz: null }, all: { a: 1, n: 5 } });
      const key = `session:${r.session.id}`;
      const db = await holder(key);
      const ttl = await db.ttl(key);
      assert.ok(ttl > 290 && ttl <= 300, `idle TTL ${ttl}`);
      // A later request writes under the same id; invalidate() ends it for good.
      const later = await app.run((s) => s.set('x', 1), { jar });
      assert.equal(later.session.id, r.session.id);
      await app.run((s) => s.invalidate(), { jar });
      assert.equal(await db.exists(key), false);
      const cookie = signedSidCookie(r.session.id, SECRET);
      const revived = await app.run(async (s) => (await s.set('y', 1), s.id), { cookie });
      assert.notEqual(revived.value, r.session.id, 'no resurrection');
      assert.equal(await db.exists(key), false);
    });
  });

  test('100 concurrent incr() on one session read back 100', async () => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      const first = await app.run(() => {}, { jar });
      const cookie = jar.header();
      const results = await Promise.all(Array.from({ length: 100 }, () => app.run((s) => s.incr('hits'), { cookie })));
      assert.deepEqual(
        results.map((r) => r.value).sort((a, b) => a - b),
        Array.from({ length: 100 }, (_, i) => i + 1)
      );
      assert.equal((await app.run((s) => s.get('hits'), { cookie })).value, 100);
      assert.ok(results.every((r) => r.session.id === first.session.id));
    });
  });

  test('regenerate() 20 times (ids across nodes): the data under each new id, the old key gone', async () => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.mset({ user: 'ann', cart: [1, 2] }), { jar });
      let id = first.session.id;
      const nodes = new Set([(await cluster.primaryOf(slotOf(`session:${id}`))).port]);
      for (let i = 0; i < 20; i++) {
        const r = await app.run(async (s) => (await s.regenerate(), s.id), { jar });
        assert.equal(r.error, undefined, r.error && r.error.message);
        assert.notEqual(r.value, id);
        assert.equal(await (await holder(`session:${id}`)).exists(`session:${id}`), false, 'the old key is gone');
        const key = `session:${r.value}`;
        assert.deepEqual(await (await holder(key)).sessionData(key), { user: '"ann"', cart: '[1,2]' });
        nodes.add((await cluster.primaryOf(slotOf(key))).port);
        id = r.value;
      }
      assert.ok(nodes.size >= 2, 'the ids crossed nodes');
      assert.deepEqual((await app.run((s) => s.getAll(), { jar })).value, { user: 'ann', cart: [1, 2] });
    });
  });

  test("sessions per user: the index lives in its own slot; sessions() lists every node's, revoke() ends them all", async () => {
    await withSessionApp(express, options(), async (app) => {
      const clients = [];
      for (let i = 0; i < 6; i++) {
        const jar = new CookieJar();
        await app.run((s) => s.set('cart', [i]), { jar });
        const r = await app.run(async (s) => (await s.login('ann', { meta: { i } }), s.id), { jar });
        assert.equal(r.error, undefined, r.error && r.error.message);
        clients.push({ jar, id: r.value });
      }
      const primaries = new Set(await Promise.all(clients.map(async ({ id }) => (await cluster.primaryOf(slotOf(`session:${id}`))).port)));
      assert.ok(primaries.size >= 2, 'the sessions are on several primaries');
      const listed = await app.mw.sessions('ann');
      assert.deepEqual(listed.map((s) => s.meta.i).sort(), [0, 1, 2, 3, 4, 5]);
      assert.equal((await app.run((s) => s.userId, { jar: clients[1].jar })).value, 'ann');
      assert.equal(await app.mw.revoke('ann', { except: clients[0].id }), 5);
      for (const { id, jar } of clients.slice(1)) {
        assert.equal(await (await holder(`session:${id}`)).exists(`session:${id}`), false);
        assert.equal((await app.run((s) => s.userId, { jar })).value, null);
      }
      assert.deepEqual(
        (await app.mw.sessions('ann')).map((s) => s.id),
        [clients[0].id]
      );
      const out = await app.run(async (s) => (await s.logout(), s.userId), { jar: clients[0].jar });
      assert.equal(out.value, null);
      assert.deepEqual(await app.mw.sessions('ann'), []);
    });
  });

  test("waitReplicas: writes are confirmed by each node's replica; asking for more replicas than a node has fails them with a code", async () => {
    const durable = (replicas) => ({ ...options(), redis: { ...options().redis, waitReplicas: replicas, waitTimeout: 200 } });
    await withSessionApp(express, durable(1), async (app) => {
      const jar = new CookieJar();
      const r = await app.run(
        async (s) => {
          await s.mset({ a: 1, b: 2 });
          await s.incr('n');
          await s.regenerate();
          return s.getAll();
        },
        { jar }
      );
      assert.equal(r.error, undefined, r.error && r.error.message);
      assert.deepEqual(r.value, { a: 1, b: 2, n: 1 });
    });
    await withSessionApp(express, durable(2), async (app) => {
      const r = await app.run(async (s) => ({ set: await s.set('a', 1).catch((err) => err.code), read: await s.get('a') }));
      assert.deepEqual(r.value, { set: 'ERR_SESSION_NOT_REPLICATED', read: 1 }, 'applied on the primary, not confirmed');
    });
  });

  test('a live session whose slot moves to another primary keeps being read and written (MOVED / ASK)', async (t) => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.set('n', 0), { jar });
      const key = `session:${first.session.id}`;
      const slot = slotOf(key);
      const source = await cluster.primaryOf(slot);
      const target = (await cluster.topology()).find((n) => n.primary && n.port !== source.port);
      const failovers = [];
      app.mw.on('failover', (detail) => failovers.push(detail));
      await until(async () => app.mw.stats().connections.length === 3, 5000, 'the topology read');
      let stop = false;
      let writes = 0;
      const errors = [];
      const load = (async () => {
        while (!stop) {
          const r = await app.run((s) => s.incr('n'), { jar });
          if (r.error) errors.push(r.error.code);
          else writes++;
          await delay(5);
        }
      })();
      // The slot moves the way redis-cli --cluster reshard moves it.
      await cluster.moveSlot(slot, source, target);
      await delay(300);
      stop = true;
      await load;
      t.diagnostic(`${writes} writes during the move, ${errors.length} failed (${[...new Set(errors)].join(', ') || 'none'})`);
      assert.equal((await cluster.primaryOf(slot)).port, target.port, 'the slot moved');
      const final = await app.run((s) => s.get('n'), { jar });
      assert.equal(final.value, writes, 'every acknowledged write counted once');
      assert.equal(final.session.id, first.session.id);
      assert.deepEqual(errors, []);
      // Operators are told: one slot moved, from the source to the target.
      await until(async () => failovers.length > 0, 5000, 'a failover event');
      const at = (port) => ({ host: '127.0.0.1', port });
      assert.deepEqual(failovers, [{ from: at(source.port), to: at(target.port), slots: 1 }]);
    });
  });

  test("calls go to their primary on a connection of their own (the event loop's); 8 requests in parallel with one cookie while its slot moves: every acknowledged write counted once", async (t) => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.set('n', 0), { jar });
      const slot = slotOf(`session:${first.session.id}`);
      await until(async () => app.mw.stats().connections.length === 3, 5000, 'the topology read');
      for (let i = 0; i < 20; i++) await app.run((s) => s.get('n'), { jar });
      // The session's primary has two connections of the app: redis-rs's
      // (topology, moves), and the direct one its calls went on.
      const source = await cluster.primaryOf(slot);
      const src = cluster.admin(source.port);
      const listed = (await src.command('CLIENT', 'LIST')).trim().split('\n');
      const fields = (line) => Object.fromEntries(line.split(' ').map((pair) => pair.split('=')));
      // Not the app's: a replica's, this admin one, and a node's MIGRATE connection (an earlier test's move).
      const apps = listed.map(fields).filter((c) => !c.flags.includes('S') && !['client|list', 'restore-asking'].includes(c.cmd));
      assert.equal(apps.length, 2, listed.join('\n'));
      assert.equal(apps.filter((c) => c.cmd === 'hget').length, 1, listed.join('\n'));

      const target = (await cluster.topology()).find((n) => n.primary && n.port !== source.port);
      let stop = false;
      let writes = 0;
      const errors = [];
      const lane = async () => {
        while (!stop) {
          const r = await app.run((s) => s.incr('n'), { jar });
          if (r.error) errors.push(`${r.error.code} ${r.error.message}`);
          else writes++;
        }
      };
      const lanes = Array.from({ length: 8 }, lane);
      await delay(100);
      await cluster.moveSlot(slot, source, target);
      await delay(2500); // past the next reading of the slot map: calls go direct to the target
      stop = true;
      await Promise.all(lanes);
      t.diagnostic(`${writes} writes in 8 parallel lanes through the move, ${errors.length} failed (${[...new Set(errors)].join(', ') || 'none'})`);
      assert.deepEqual(errors, []);
      const final = await app.run((s) => s.get('n'), { jar });
      assert.equal(final.value, writes, 'every acknowledged write counted once');
      assert.equal(final.session.id, first.session.id);
    });
  });

  test('kill -9 of the primary that holds a live session: served again within 2 s of its replica taking over, no crash, data kept', async (t) => {
    await withSessionApp(express, options(), async (app) => {
      const jar = new CookieJar();
      const first = await app.run((s) => s.set('kept', 'yes'), { jar });
      const key = `session:${first.session.id}`;
      const primary = await cluster.primaryOf(slotOf(key));
      // The replica has the value before the primary dies.
      await cluster.admin(primary.port).command('WAIT', 1, 2000);
      const replica = (await cluster.topology()).find((n) => n.primaryId === primary.id);
      // What operators are told: the primary stops answering, its slots move to its replica.
      const told = [];
      for (const event of ['disconnect', 'failover']) app.mw.on(event, (detail) => told.push({ event, at: Date.now(), ...detail }));
      await until(async () => app.mw.stats().connections.length === 3, 5000, 'the topology read');
      assert.ok(app.mw.stats().connections.every((c) => c.state === 'connected'));
      process.kill(cluster.servers.get(primary.port).pid, 'SIGKILL');
      const killed = Date.now();
      // When its replica becomes the primary, as the replica itself says.
      let promoted;
      const watch = until(
        async () => {
          const [role] = await cluster.admin(replica.port).command('ROLE');
          if (role === 'master') promoted = Date.now() - killed;
          return promoted !== undefined;
        },
        cluster.nodeTimeoutMs + 10000,
        'the replica promoted'
      );
      let served;
      const failures = [];
      let longest = 0;
      await until(
        async () => {
          const start = Date.now();
          const r = await app.run((s) => s.get('kept'), { jar });
          longest = Math.max(longest, Date.now() - start);
          const err = r.error || r.middlewareError;
          if (err) failures.push(err.code);
          else if (r.value === 'yes') served = Date.now() - killed;
          return served !== undefined;
        },
        cluster.nodeTimeoutMs + 10000,
        'the session served again'
      );
      await watch;
      t.diagnostic(
        `the cluster promoted a replica ${promoted} ms after the kill; ` +
          `served again ${served} ms after the kill (cluster-node-timeout ${cluster.nodeTimeoutMs} ms); ` +
          `${failures.length} requests failed before (${[...new Set(failures)].join(', ') || 'none'}); the longest took ${longest} ms`
      );
      // Redis itself promotes the replica node-timeout plus gossip and an
      // election after the kill (3.5 to 4.5 s here): within 2 s of that, the
      // app must serve again.
      assert.ok(served - promoted < 2000, `served ${served - promoted} ms after the promotion`);
      assert.ok(served < cluster.nodeTimeoutMs + 5000, `${served} ms after the kill`);
      assert.ok(longest < 2 * 1000 + 500, `a request took ${longest} ms (commandTimeout 1000 ms, twice in a request: refresh and get)`);
      for (const code of failures) assert.ok(['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT'].includes(code), code);
      const write = await app.run((s) => s.set('after', 1), { jar });
      assert.equal(write.error, undefined);
      assert.equal(write.session.id, first.session.id);

      const failover = await until(async () => told.find((e) => e.event === 'failover'), 5000, 'a failover event');
      const from = { host: '127.0.0.1', port: primary.port };
      assert.deepEqual(failover.from, from);
      assert.deepEqual(failover.to, { host: '127.0.0.1', port: replica.port });
      assert.equal(
        failover.slots,
        primary.slots.reduce((sum, [a, b]) => sum + b - a + 1, 0),
        'every slot of the killed primary'
      );
      const down = told.find((e) => e.event === 'disconnect');
      assert.ok(down && down.port === primary.port && down.code === 'ERR_SESSION_CONNECTION', JSON.stringify(told));
      t.diagnostic(`told: disconnect ${down.at - killed} ms, failover ${failover.at - killed} ms after the kill`);
      const listed = app.mw.stats().connections;
      assert.ok(
        listed.some((c) => c.port === replica.port && c.state === 'connected'),
        JSON.stringify(listed)
      );
      assert.ok(!listed.some((c) => c.port === primary.port), 'the killed primary is no longer listed');
    });
  });

  test('bad cluster options throw ERR_SESSION_CONFIG; unreachable nodes fail calls with a code within connectTimeout', async () => {
    const altSession = require('..');
    for (const cluster of [{ nodes: [] }, { nodes: 'a' }, { nodes: [{ port: 'x' }] }, { nodes: [{ port: 1 }], tls: { rejectUnauthorized: false } }]) {
      assert.throws(() => altSession({ redis: { cluster }, session: { secret: SECRET } }), { code: 'ERR_SESSION_CONFIG' }, JSON.stringify(cluster));
    }
    // refreshErrors: 'next': the per-request refresh's error, the first call's, reaches the app.
    await withSessionApp(
      express,
      { redis: { cluster: { nodes: [{ port: 1 }] }, connectTimeout: 500 }, session: { secret: SECRET, refreshErrors: 'next' } },
      async (app) => {
        const start = Date.now();
        const r = await app.run(() => {});
        assert.ok(
          ['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT'].includes(r.middlewareError && r.middlewareError.code),
          r.middlewareError && r.middlewareError.message
        );
        assert.ok(Date.now() - start < 1500);
      }
    );
  });
});

// Each test skipped on its own where the server has no TLS, so that it counts in `# skipped`.
describe('Redis Cluster over TLS: every node serves TLS only', () => {
  let certificates;
  let cluster;
  before(async () => {
    if (noTls()) return;
    certificates = makeCertificates();
    cluster = await startCluster({ certificates });
  });
  after(async () => {
    if (noTls()) return;
    await cluster.stop();
    certificates.remove();
  });

  test('sessions are written and read through Express with the test CA; another CA fails with a code', { skip: noTls() }, async () => {
    const redis = { cluster: { nodes: cluster.nodes.slice(0, 2), tls: { ca: certificates.pem('ca.crt') } }, commandTimeout: 1000 };
    await withSessionApp(express, { redis, session: { secret: SECRET } }, async (app) => {
      const jar = new CookieJar();
      const written = await app.run((s) => s.mset({ over: 'tls', n: 1 }), { jar });
      assert.equal(written.error, undefined, written.error && written.error.message);
      const read = await app.run(async (s) => ({ all: await s.getAll(), n: await s.incr('n') }), { jar });
      assert.deepEqual(read.value, { all: { over: 'tls', n: 1 }, n: 2 });
    });
    const wrong = { cluster: { nodes: cluster.nodes.slice(0, 1), tls: { ca: certificates.pem('other-ca.crt') } }, connectTimeout: 1000 };
    await withSessionApp(express, { redis: wrong, session: { secret: SECRET, refreshErrors: 'next' } }, async (app) => {
      const r = await app.run(() => {});
      assert.ok(r.middlewareError, 'the request failed');
      assert.ok(['ERR_SESSION_TLS', 'ERR_SESSION_CONNECTION'].includes(r.middlewareError.code), r.middlewareError.message);
      assert.match(r.middlewareError.message, /certificate/);
    });
  });
});
