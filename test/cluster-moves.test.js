'use strict';

// Redis Cluster: regenerate() and login() move a session to a key in another
// slot, often on another node. Whatever fails during a move (the new key's
// node killed, or paused), every session keeps its data under an id its
// cookie holds; and calls of other sessions never wait behind a stalled move
// past commandTimeout.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { setTimeout: delay } = require('node:timers/promises');
const { startCluster, slotOf } = require('../__test__/servers/cluster');
const { until } = require('../__test__/servers/sentinel');
const { withSessionApp } = require('./helpers/session-server');
const { CookieJar } = require('./helpers/http');

const SECRET = 'cluster moves test';
const COMMAND_TIMEOUT_MS = 500;
/** How long a move's claim lasts: 10 s, or twice commandTimeout when that is longer. */
const CLAIM_MS = 10000;

describe('Redis Cluster: moves keep the data when another node fails', () => {
  let cluster;
  let primaries; // the three primaries, by port
  before(async () => {
    cluster = await startCluster();
    primaries = (await cluster.topology()).filter((n) => n.primary);
  });
  after(() => cluster.stop());

  const options = () => ({
    redis: { cluster: { nodes: cluster.nodes.slice(0, 2) }, commandTimeout: COMMAND_TIMEOUT_MS },
    session: { secret: SECRET },
  });

  /** The primary that serves a session id's key. */
  const primaryOfId = (id) => primaries.find((n) => n.slots.some(([a, b]) => slotOf(`session:${id}`) >= a && slotOf(`session:${id}`) <= b));

  /** The key of every session a test created. */
  const created = new Set();

  /** `count` sessions, each holding its own value `v`, all on the primaries `on` (ports). */
  async function seed(app, count, on) {
    const sessions = [];
    while (sessions.length < count) {
      const jar = new CookieJar();
      const r = await app.run((s) => s.set('v', sessions.length), { jar });
      assert.equal(r.error, undefined, r.error && r.error.message);
      created.add(`session:${r.session.id}`);
      if (on.includes(primaryOfId(r.session.id).port)) sessions.push({ jar, id: r.session.id, v: sessions.length });
    }
    return sessions;
  }

  /**
   * Every session reads back its value through the cookie its client holds
   * now. A read that gets no answer (the cluster settling) is tried again
   * for a while: what is asked is whether the data is there.
   */
  async function lostSessions(app, sessions) {
    const lost = [];
    for (const session of sessions) {
      let r;
      for (const deadline = Date.now() + 15000; ; await delay(200)) {
        r = await app.run((s) => s.get('v'), { jar: session.jar });
        const err = r.error || r.middlewareError;
        if (!err || !['ERR_SESSION_TIMEOUT', 'ERR_SESSION_CONNECTION'].includes(err.code) || Date.now() > deadline) break;
      }
      if (r.error || r.middlewareError || r.value !== session.v) lost.push({ id: session.id, got: r.value, error: (r.error || r.middlewareError || {}).code });
    }
    return lost;
  }

  /** regenerate() (even sessions) or login() (odd ones) of every session at once; what each ended with. */
  async function moveAll(app, sessions) {
    return Promise.all(
      sessions.map(async (session, i) => {
        const r = await app.run((s) => (i % 2 ? s.login(`user-${i}`) : s.regenerate()), { jar: session.jar });
        const ok = !r.error && !r.middlewareError;
        if (ok) session.id = r.session.id; // its client holds the new cookie
        return { ok, code: (r.error || r.middlewareError || {}).code };
      })
    );
  }

  test('another primary paused (CLIENT PAUSE WRITE): failed moves keep the old id and its data; other sessions are served within commandTimeout', async (t) => {
    await withSessionApp(express, options(), async (app) => {
      const [healthy, ...paused] = primaries;
      const sessions = await seed(app, 30, [healthy.port]);
      const bystanders = await seed(app, 5, [healthy.port]);
      for (const node of paused) await cluster.admin(node.port).command('CLIENT', 'PAUSE', 3000, 'WRITE');
      const pausedAt = Date.now();
      // Reads of other sessions on the healthy primary while the moves stall.
      let stop = false;
      const latencies = [];
      const reads = (async () => {
        while (!stop) {
          for (const { jar } of bystanders) {
            const r = await app.run(
              async (s) => {
                const start = Date.now();
                await s.get('v');
                return Date.now() - start;
              },
              { jar }
            );
            assert.equal(r.error || r.middlewareError, undefined);
            latencies.push(r.value);
          }
        }
      })();
      const outcomes = await moveAll(app, sessions);
      stop = true;
      await reads;
      // Once the pause is over, the stalled commands run: nothing may have lost its data.
      await until(async () => Date.now() - pausedAt > 3500, 5000, 'the end of the pause');
      await delay(500);
      const lost = await lostSessions(app, sessions);
      const failed = outcomes.filter((o) => !o.ok);
      const slowest = Math.max(...latencies);
      t.diagnostic(
        `${outcomes.length - failed.length} moves done, ${failed.length} failed (${[...new Set(failed.map((o) => o.code))].join(', ')}); ` +
          `${lost.length} sessions lost their data; ${latencies.length} reads of other sessions meanwhile, the slowest ${slowest} ms`
      );
      assert.deepEqual(lost, []);
      assert.ok(failed.length > 0, 'some new ids fell on the paused primaries: the test exercised failed moves');
      for (const { code } of failed) assert.ok(['ERR_SESSION_TIMEOUT', 'ERR_SESSION_CONNECTION'].includes(code), code);
      assert.ok(slowest < COMMAND_TIMEOUT_MS + 250, `a read of another session took ${slowest} ms`);
      // A failed move leaves no lasting copy behind: deleted, or (where the
      // delete could not reach the stalled node) expiring with the move's claim.
      const held = new Set(sessions.map(({ id }) => `session:${id}`));
      const lasting = [];
      let copies = 0;
      for (const node of paused) {
        const admin = cluster.admin(node.port);
        for (const key of await admin.command('KEYS', 'session:*')) {
          if (key.startsWith('session:user:') || held.has(key) || created.has(key)) continue;
          copies++;
          if (!((await admin.command('PTTL', key)) <= CLAIM_MS)) lasting.push(key);
        }
      }
      t.diagnostic(`${copies} copies of failed moves left, each expiring within the claim (${CLAIM_MS} ms)`);
      assert.deepEqual(lasting, [], 'copies of failed moves that would outlast their claim');
    });
  });

  test("another primary killed (kill -9): no regenerate() or login() loses the session's data", async (t) => {
    await withSessionApp(express, options(), async (app) => {
      const [first, second, victim] = primaries;
      const sessions = await seed(app, 40, [first.port, second.port]);
      process.kill(cluster.servers.get(victim.port).pid, 'SIGKILL');
      const outcomes = await moveAll(app, sessions);
      // Reads come once the cluster has promoted the victim's replica: every id is reachable again.
      await until(
        async () => /cluster_state:ok/.test(await cluster.admin(first.port).command('CLUSTER', 'INFO')),
        cluster.nodeTimeoutMs + 15000,
        'the cluster ok again'
      );
      await delay(1000);
      const lost = await lostSessions(app, sessions);
      const failed = outcomes.filter((o) => !o.ok);
      t.diagnostic(
        `${outcomes.length - failed.length} of ${outcomes.length} moves done, ${failed.length} failed (${[...new Set(failed.map((o) => o.code))].join(', ')}); ${lost.length} sessions lost their data`
      );
      assert.deepEqual(lost, []);
      assert.ok(failed.length > 0, 'some new ids fell on the killed primary: the test exercised failed moves');
    });
  });
});
