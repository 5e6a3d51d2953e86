'use strict';

// Sentinel: a primary, a replica and a sentinel on loopback. The app finds the
// primary through the sentinel, keeps serving through a SENTINEL FAILOVER and
// through a kill -9 of the primary, under a bounded load of writes, with no
// restart; calls that fail do so with a code, and what was written before
// reads back.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const redis = require('redis');
const { setTimeout: delay } = require('node:timers/promises');
const altSession = require('..');
const { startSentinelGroup, until } = require('./helpers/sentinel');
const { listen, request, cookieHeader } = require('./helpers/http');
const { withRedisClient } = require('./helpers/redis-client');
const { makeCertificates } = require('./helpers/certificates');
const { passThrough } = require('./helpers/session-server');

const SECRET = 'sentinel test';
const COMMAND_TIMEOUT_MS = 500;
// During a failover: the connection lost, no answer in time, or no usable primary named yet.
const FAILURE_CODES = ['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT', 'ERR_SESSION_SENTINEL'];

/**
 * An Express app on our middleware under Sentinel (`redis`: more options,
 * such as TLS): /write increments, /read returns the session.
 */
async function startApp(group, redis = {}) {
  const mw = altSession({
    redis: { sentinel: { name: group.name, nodes: [group.sentinel] }, commandTimeout: COMMAND_TIMEOUT_MS, connectTimeout: 1000, ...redis },
    session: { secret: SECRET },
  });
  const app = express();
  app.use(mw);
  app.post('/write', async (req, res, next) => {
    try {
      res.json({ n: await req.session.incr('n') });
    } catch (err) {
      next(err);
    }
  });
  app.post('/seed/:value', async (req, res, next) => {
    try {
      await req.session.set('value', req.params.value);
      await req.session.login('seeded');
      res.json({ id: req.session.id });
    } catch (err) {
      next(err);
    }
  });
  app.get('/read', async (req, res, next) => {
    try {
      res.json({ ...(await req.session.getAll()), userId: req.session.userId });
    } catch (err) {
      next(err);
    }
  });
  app.use((err, req, res, next) => res.status(503).json({ code: err.code, message: err.message })); // eslint-disable-line no-unused-vars
  const { origin, close } = await listen(app);
  return { origin, mw, close: async () => (await close(), await mw.close()) };
}

/**
 * A steady, bounded load: `lanes` clients each POST /write in a loop (their
 * own session each) until stop() is called; every outcome is kept with its time.
 */
function startLoad(app, lanes = 4) {
  const outcomes = [];
  let stopped = false;
  const running = Array.from({ length: lanes }, async () => {
    let cookie;
    while (!stopped) {
      const r = await request(app.origin, '/write', { method: 'POST', cookie }).catch((err) => ({ status: 0, json: { code: err.message } }));
      outcomes.push({ at: Date.now(), ok: r.status === 200, code: r.json && r.json.code });
      cookie = cookie || cookieHeader(r.setCookies || []);
      await delay(10);
    }
  });
  return {
    outcomes,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}

/** The first successful write at or after `since`, in ms after it. */
function recoveredAfter(outcomes, since) {
  const first = outcomes.find((o) => o.ok && o.at >= since);
  return first ? first.at - since : Infinity;
}

describe('Sentinel', () => {
  let group;
  let app;
  let switches; // +switch-master announcements, with their times
  let subscriber;
  before(async () => {
    group = await startSentinelGroup();
    app = await startApp(group);
    switches = [];
    subscriber = redis.createClient({ host: '127.0.0.1', port: group.sentinel.port });
    subscriber.on('error', () => {});
    subscriber.on('message', (channel, message) => switches.push({ at: Date.now(), message }));
    await new Promise((resolve) => subscriber.subscribe('+switch-master', resolve));
  });
  after(async () => {
    subscriber.quit();
    await app.close();
    await group.stop();
  });

  /** Writes `count` signed-in sessions, each holding its own value, and waits until the replica has them. */
  async function seed(count) {
    const sessions = [];
    for (let i = 0; i < count; i++) {
      const r = await request(app.origin, `/seed/v${i}`, { method: 'POST' });
      assert.equal(r.status, 200, r.body);
      sessions.push({ cookie: cookieHeader(r.setCookies), value: `v${i}`, id: r.json.id });
    }
    const primary = group.nodes.get(await group.primaryPort());
    await withRedisClient(primary, (db) => db.command('WAIT', 1, 2000));
    return sessions;
  }

  /** Every seeded session reads back, still signed in and listed as its user's. */
  async function assertReadBack(sessions) {
    for (const { cookie, value } of sessions) {
      const r = await request(app.origin, '/read', { cookie });
      assert.equal(r.status, 200, r.body);
      assert.equal(r.json.value, value, 'a value written before the failover');
      assert.equal(r.json.userId, 'seeded');
    }
    const listed = new Set((await app.mw.sessions('seeded')).map((s) => s.id));
    assert.deepEqual(sessions.filter(({ id }) => !listed.has(id)), [], 'seeded sessions missing from the list');
  }

  test('SENTINEL FAILOVER under load: the app follows the new primary by itself; failed calls have codes; data reads back', async (t) => {
    const sessions = await seed(50);
    const oldPrimary = await group.primaryPort();
    const load = startLoad(app);
    await delay(500);
    const asked = Date.now();
    assert.equal(await group.admin.command('SENTINEL', 'FAILOVER', group.name), 'OK');
    const announced = await until(async () => switches.find((s) => s.at >= asked), 10000, '+switch-master');
    await delay(2000);
    await load.stop();

    const newPrimary = await group.primaryPort();
    assert.notEqual(newPrimary, oldPrimary, 'the sentinel moved the primary');
    const failed = load.outcomes.filter((o) => !o.ok);
    const recovery = recoveredAfter(load.outcomes, announced.at);
    t.diagnostic(
      `+switch-master ${announced.at - asked} ms after SENTINEL FAILOVER; first successful write ${recovery} ms after it; ` +
        `${failed.length} of ${load.outcomes.length} calls failed (${[...new Set(failed.map((o) => o.code))].join(', ') || 'none'})`
    );
    assert.ok(recovery < 2000, `first write after the switch took ${recovery} ms`);
    for (const { code } of failed) assert.ok(FAILURE_CODES.includes(code), `a failed call's code: ${code}`);
    const afterSwitch = load.outcomes.filter((o) => o.at > announced.at + recovery);
    assert.ok(afterSwitch.length > 50 && afterSwitch.every((o) => o.ok), 'every call after the recovery succeeded');
    await assertReadBack(sessions);
  });

  test('kill -9 of the primary under load: served again within down-after-milliseconds + failover + 2 s, no crash', async (t) => {
    const sessions = await seed(20);
    const primaryPort = await group.primaryPort();
    const load = startLoad(app);
    await delay(500);
    const killedAt = Date.now();
    process.kill(group.nodes.get(primaryPort).pid, 'SIGKILL');
    const announced = await until(async () => switches.find((s) => s.at >= killedAt), 15000, '+switch-master after the kill');
    await until(async () => recoveredAfter(load.outcomes, killedAt) < Infinity, 5000, 'a successful write');
    await delay(1000);
    await load.stop();

    // Served again: the first successful write once the sentinel announced the new primary.
    const recovery = recoveredAfter(load.outcomes, announced.at) + (announced.at - killedAt);
    const failed = load.outcomes.filter((o) => !o.ok);
    t.diagnostic(
      `+switch-master ${announced.at - killedAt} ms after the kill; served again ${recovery} ms after the kill ` +
        `(${recovery - (announced.at - killedAt)} ms after the announcement); ${failed.length} of ${load.outcomes.length} calls failed ` +
        `(${[...new Set(failed.map((o) => o.code))].join(', ') || 'none'})`
    );
    assert.ok(recovery < announced.at - killedAt + 2000, `served again ${recovery} ms after the kill`);
    assert.ok(recovery < group.downAfterMs + 5000 + 2000, 'within down-after-milliseconds + failover + 2 s');
    assert.ok(load.outcomes.filter((o) => o.at > killedAt + recovery).every((o) => o.ok), 'every call after the recovery succeeded');
    for (const { code } of failed) assert.ok(FAILURE_CODES.includes(code), `a failed call's code: ${code}`);
    await assertReadBack(sessions);
  });

  test('a primary name no sentinel knows fails with ERR_SESSION_SENTINEL, and unreachable sentinels with ERR_SESSION_CONNECTION, within connectTimeout', async () => {
    const dead = { host: '127.0.0.1', port: 1 };
    for (const [sentinel, code] of [
      [{ name: 'nobody', nodes: [group.sentinel] }, 'ERR_SESSION_SENTINEL'],
      [{ name: group.name, nodes: [dead] }, 'ERR_SESSION_CONNECTION'],
    ]) {
      const mw = altSession({ redis: { sentinel, connectTimeout: 1000, commandTimeout: 3000 }, session: { secret: SECRET } });
      const start = Date.now();
      const { err } = await passThrough(mw);
      const ms = Date.now() - start;
      await mw.close();
      assert.equal(err && err.code, code, err && err.message);
      assert.ok(ms < 1500, `${ms} ms`);
    }
  });

  test('bad sentinel options throw ERR_SESSION_CONFIG', () => {
    const bad = [
      { nodes: [group.sentinel] },
      { name: 'x', nodes: [] },
      { name: 'x', nodes: [{ port: 'abc' }] },
      { name: 'x', nodes: [group.sentinel], tls: 'yes' },
      { name: 'x', nodes: [group.sentinel], tls: { rejectUnauthorized: false } },
    ];
    for (const sentinel of bad) {
      assert.throws(() => altSession({ redis: { sentinel }, session: { secret: SECRET } }), { code: 'ERR_SESSION_CONFIG' }, JSON.stringify(sentinel));
    }
  });
});

describe('Sentinel over TLS: the sentinels, the primary and the replica serve TLS only', () => {
  let certificates;
  let group;
  before(async () => {
    certificates = makeCertificates();
    group = await startSentinelGroup({ certificates });
  });
  after(async () => {
    await group.stop();
    certificates.remove();
  });

  const tls = () => ({ ca: certificates.pem('ca.crt') });

  test('the app finds the primary over TLS, writes, and follows a SENTINEL FAILOVER', async (t) => {
    const app = await startApp(group, { tls: tls(), sentinel: { name: group.name, nodes: [group.sentinel], tls: tls() } });
    try {
      const seeded = await request(app.origin, '/seed/over-tls', { method: 'POST' });
      assert.equal(seeded.status, 200, seeded.body);
      const cookie = cookieHeader(seeded.setCookies);
      await withRedisClient(group.nodes.get(await group.primaryPort()), (db) => db.command('WAIT', 1, 2000));
      const oldPrimary = await group.primaryPort();
      const load = startLoad(app, 2);
      await delay(300);
      assert.equal(await group.admin.command('SENTINEL', 'FAILOVER', group.name), 'OK');
      await until(async () => (await group.primaryPort()) !== oldPrimary, 10000, 'the failover');
      const switched = Date.now();
      await until(async () => recoveredAfter(load.outcomes, switched) < Infinity, 5000, 'a write on the new primary');
      await delay(500);
      await load.stop();
      const failed = load.outcomes.filter((o) => !o.ok);
      t.diagnostic(`over TLS: ${failed.length} of ${load.outcomes.length} calls failed around the failover`);
      for (const { code } of failed) assert.ok(FAILURE_CODES.includes(code), `a failed call's code: ${code}`);
      const read = await request(app.origin, '/read', { cookie });
      assert.deepEqual(read.json, { value: 'over-tls', userId: 'seeded' });
    } finally {
      await app.close();
    }
  });

  test("sentinels whose certificate does not verify fail the calls with a code, within connectTimeout", async (t) => {
    const other = { ca: certificates.pem('other-ca.crt') };
    const mw = altSession({
      redis: { sentinel: { name: group.name, nodes: [group.sentinel], tls: other }, tls: tls(), connectTimeout: 1000, commandTimeout: 3000 },
      session: { secret: SECRET },
    });
    const start = Date.now();
    const { err } = await passThrough(mw);
    const ms = Date.now() - start;
    await mw.close();
    t.diagnostic(`${err && err.code} after ${ms} ms: ${err && err.message}`);
    assert.equal(err && err.code, 'ERR_SESSION_TLS', err && err.message);
    assert.match(err.message, /certificate/);
    assert.ok(ms < 1500, `${ms} ms`);
  });
});
