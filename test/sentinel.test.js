'use strict';

// Sentinel: a primary, a replica and three sentinels on loopback. The app
// finds the primary through the sentinels and follows their announcements:
// through a SENTINEL FAILOVER under a write load, every write it
// acknowledged is on the primary the sentinels name afterwards; through a
// kill -9 of the primary with redis.waitReplicas, too. Calls that fail do so
// with a code, and what was written before reads back.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const redis = require('redis');
const { setTimeout: delay } = require('node:timers/promises');
const altSession = require('..');
const { startSentinelGroup, until } = require('../__test__/servers/sentinel');
const { noTls } = require('../__test__/servers/redis');
const { listen, request, cookieHeader } = require('./helpers/http');
const { withRedisClient } = require('../__test__/servers/redis-client');
const { makeCertificates } = require('../__test__/servers/certificates');
const { passThrough } = require('./helpers/session-server');

const SECRET = 'sentinel test';
const COMMAND_TIMEOUT_MS = 1000;
// During a failover: the connection lost, no answer in time, no usable primary
// named yet, or (waitReplicas) a write no replica confirmed.
const FAILURE_CODES = ['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT', 'ERR_SESSION_SENTINEL', 'ERR_SESSION_NOT_REPLICATED'];

/**
 * An Express app on our middleware under Sentinel (`redis`: more options,
 * such as TLS): POST /write/:field sets one field, /read returns the session.
 */
async function startApp(group, redis = {}) {
  const mw = altSession({
    redis: { sentinel: { name: group.name, nodes: group.sentinels }, commandTimeout: COMMAND_TIMEOUT_MS, connectTimeout: 1000, ...redis },
    session: { secret: SECRET },
  });
  const app = express();
  app.use(mw);
  app.post('/write/:field', async (req, res, next) => {
    try {
      await req.session.set(req.params.field, Date.now());
      res.json({ id: req.session.id });
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
  let closed;
  // Once, whoever asks first: a test, or its clean-up after a failed assertion.
  const closeOnce = () => (closed ||= (async () => (await close(), await mw.close()))());
  return { origin, mw, close: closeOnce };
}

/**
 * A steady, bounded load: `lanes` clients each POST /write/w<n> in a loop
 * (their own session each, a new field every time) until stop() is called.
 * Every outcome is kept with its time; `acknowledged` maps each session id
 * to the fields whose write answered 200.
 */
function startLoad(app, lanes = 4) {
  const outcomes = [];
  const acknowledged = new Map();
  const acknowledgedAt = new Map(); // field -> when its write answered 200
  let stopped = false;
  let sequence = 0;
  const running = Array.from({ length: lanes }, async () => {
    let cookie;
    while (!stopped) {
      const field = `w${sequence++}`;
      const r = await request(app.origin, `/write/${field}`, { method: 'POST', cookie }).catch((err) => ({ status: 0, json: { code: err.message } }));
      outcomes.push({ at: Date.now(), ok: r.status === 200, code: r.json && r.json.code });
      if (r.status === 200) {
        if (!acknowledged.has(r.json.id)) acknowledged.set(r.json.id, []);
        acknowledged.get(r.json.id).push(field);
        acknowledgedAt.set(field, Date.now());
      }
      cookie = cookie || cookieHeader(r.setCookies || []);
      await delay(10);
    }
  });
  return {
    outcomes,
    acknowledged,
    acknowledgedAt,
    stop: async () => {
      stopped = true;
      await Promise.all(running);
    },
  };
}

/**
 * The acknowledged writes of `load` that the server at `port` does not hold:
 * how many, of how many, and when the first and last of them were
 * acknowledged (ms after `since`), to tell a lost window from a lost session.
 */
async function missingWrites(load, port, since = 0) {
  const missing = [];
  let total = 0;
  await withRedisClient({ host: '127.0.0.1', port }, async (db) => {
    for (const [id, fields] of load.acknowledged) {
      const held = await db.hgetall(`session:${id}`);
      total += fields.length;
      missing.push(...fields.filter((field) => !(field in held)));
    }
  });
  const times = missing.map((field) => load.acknowledgedAt.get(field) - since);
  return { count: missing.length, total, first: Math.min(...times), last: Math.max(...times) };
}

/** The first successful write at or after `since`, in ms after it. */
function recoveredAfter(outcomes, since) {
  const first = outcomes.find((o) => o.ok && o.at >= since);
  return first ? first.at - since : Infinity;
}

/** `+switch-master` announcements of any of the group's sentinels, with their times. */
function watchSwitches(group) {
  const switches = [];
  const subscribers = group.sentinels.map(({ port }) => {
    const subscriber = redis.createClient({ host: '127.0.0.1', port });
    subscriber.on('error', () => {});
    subscriber.on('message', (channel, message) => switches.push({ at: Date.now(), message }));
    return subscriber;
  });
  return {
    switches,
    ready: Promise.all(subscribers.map((s) => new Promise((resolve) => s.subscribe('+switch-master', resolve)))),
    /** The first announcement at or after `since`. */
    after: (since) => until(async () => switches.find((s) => s.at >= since), 15000, '+switch-master'),
    quit: () => {
      for (const s of subscribers) s.quit();
    },
  };
}

describe('Sentinel', () => {
  let group;
  let app;
  let watch; // +switch-master announcements
  before(async () => {
    group = await startSentinelGroup();
    app = await startApp(group);
    watch = watchSwitches(group);
    await watch.ready;
  });
  after(async () => {
    watch.quit();
    await app.close();
    await group.stop();
  });

  /** Writes `count` signed-in sessions, each holding its own value, and waits until the replica has them. */
  async function seed(count) {
    await group.healthy();
    const sessions = [];
    for (let i = 0; i < count; i++) {
      const r = await request(app.origin, `/seed/v${i}`, { method: 'POST' });
      assert.equal(r.status, 200, r.body);
      sessions.push({ cookie: cookieHeader(r.setCookies), value: `v${i}`, id: r.json.id });
    }
    const primary = group.nodes.get(await group.primaryPort());
    assert.equal(await withRedisClient(primary, (db) => db.command('WAIT', 1, 2000)), 1, 'the replica has the seeded sessions');
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
    assert.deepEqual(
      sessions.filter(({ id }) => !listed.has(id)),
      [],
      'seeded sessions missing from the list'
    );
  }

  /** The codes of the failed calls of a load, and a line that says what happened. */
  function summary(load) {
    const failed = load.outcomes.filter((o) => !o.ok);
    for (const { code } of failed) assert.ok(FAILURE_CODES.includes(code), `a failed call's code: ${code}`);
    return `${failed.length} of ${load.outcomes.length} calls failed (${[...new Set(failed.map((o) => o.code))].join(', ') || 'none'})`;
  }

  test('SENTINEL FAILOVER under a write load: every acknowledged write is on the new primary; served within 1 s of +switch-master', async (t) => {
    const sessions = await seed(50);
    const oldPrimary = await group.primaryPort();
    const failovers = [];
    const onFailover = (detail) => failovers.push(detail);
    app.mw.on('failover', onFailover);
    t.after(() => app.mw.off('failover', onFailover));
    const load = startLoad(app);
    t.after(load.stop); // a failed assertion must not leave the load running: the file would never end
    await delay(500);
    const asked = Date.now();
    assert.equal(await group.admin.command('SENTINEL', 'FAILOVER', group.name), 'OK');
    const announced = await watch.after(asked);
    await delay(2000);
    await load.stop();

    const newPrimary = await group.primaryPort();
    assert.notEqual(newPrimary, oldPrimary, 'the sentinels moved the primary');
    const recovery = recoveredAfter(load.outcomes, announced.at);
    const missing = await missingWrites(load, newPrimary);
    t.diagnostic(
      `+switch-master ${announced.at - asked} ms after SENTINEL FAILOVER; first successful write ${recovery} ms after it; ` +
        `${summary(load)}; ${missing.count} of ${missing.total} acknowledged writes missing on the new primary`
    );
    assert.equal(missing.count, 0, 'acknowledged writes missing on the new primary');
    assert.ok(recovery < 1000, `first write after the switch took ${recovery} ms`);
    const afterSwitch = load.outcomes.filter((o) => o.at > announced.at + recovery);
    assert.ok(afterSwitch.length > 50 && afterSwitch.every((o) => o.ok), 'every call after the recovery succeeded');
    const at = (port) => ({ host: '127.0.0.1', port });
    assert.deepEqual(failovers, [{ from: at(oldPrimary), to: at(newPrimary) }], 'operators told of the switch once');
    await assertReadBack(sessions);
  });

  test('kill -9 of the primary under a write load with waitReplicas: 1: no acknowledged write lost; served again after the failover', async (t) => {
    const durable = await startApp(group, { waitReplicas: 1, waitTimeout: 500 });
    t.after(durable.close);
    const sessions = await seed(20);
    const primaryPort = await group.primaryPort();
    const killed = group.nodes.get(primaryPort);
    const load = startLoad(durable);
    t.after(load.stop);
    await delay(500);
    const killedAt = Date.now();
    process.kill(killed.pid, 'SIGKILL');
    const announced = await watch.after(killedAt);
    // Back as a replica of the new primary: writes can be confirmed again.
    // Never to be promoted (replica-priority 0), as operators restart a node
    // that lost its data: until its first sync (seconds: diskless sync
    // waits 5 s) it is an empty replica, and a sentinel late to hear of the
    // failover may start one of its own, in a newer epoch, that promotes it;
    // the real primary then resyncs from it, empty (seen here: every write
    // before the kill gone, on the server's side, whichever client wrote them).
    await killed.start(['--replica-priority', '0']);
    // The sentinels make it a replica at their next INFO of it (every 10 s), then it syncs:
    // about 15 s here.
    await until(async () => recoveredAfter(load.outcomes, announced.at) < Infinity, 30000, 'a successful write');
    await delay(1000);
    await load.stop();
    await durable.close();

    const newPrimary = await group.primaryPort();
    const recovery = recoveredAfter(load.outcomes, announced.at);
    const missing = await missingWrites(load, newPrimary, killedAt);
    const when = missing.count ? ` (acknowledged ${missing.first} to ${missing.last} ms after the kill)` : '';
    t.diagnostic(
      `+switch-master ${announced.at - killedAt} ms after the kill; first confirmed write ${recovery} ms after it; ` +
        `${summary(load)}; ${missing.count} of ${missing.total} acknowledged writes missing on the new primary${when}`
    );
    assert.equal(missing.count, 0, 'acknowledged writes missing on the new primary');
    assert.ok(announced.at - killedAt < group.downAfterMs + 5000, 'the sentinels failed over');
    await assertReadBack(sessions);
  });

  test('a primary name no sentinel knows fails with ERR_SESSION_SENTINEL, and unreachable sentinels with ERR_SESSION_CONNECTION, within connectTimeout', async () => {
    const dead = { host: '127.0.0.1', port: 1 };
    for (const [sentinel, code] of [
      [{ name: 'nobody', nodes: [group.sentinel] }, 'ERR_SESSION_SENTINEL'],
      [{ name: group.name, nodes: [dead] }, 'ERR_SESSION_CONNECTION'],
    ]) {
      // refreshErrors: 'next': the per-request refresh's error, the first call's, reaches the app.
      const mw = altSession({ redis: { sentinel, connectTimeout: 1000, commandTimeout: 3000 }, session: { secret: SECRET, refreshErrors: 'next' } });
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

// Each test skipped on its own where the server has no TLS, so that it counts in `# skipped`.
describe('Sentinel over TLS: the sentinels, the primary and the replica serve TLS only', () => {
  let certificates;
  let group;
  before(async () => {
    if (noTls()) return;
    certificates = makeCertificates();
    group = await startSentinelGroup({ certificates });
  });
  after(async () => {
    if (noTls()) return;
    await group.stop();
    certificates.remove();
  });

  const tls = () => ({ ca: certificates.pem('ca.crt') });

  test('the app finds the primary over TLS, writes, and follows a SENTINEL FAILOVER', { skip: noTls() }, async (t) => {
    const app = await startApp(group, { tls: tls(), sentinel: { name: group.name, nodes: group.sentinels, tls: tls() } });
    try {
      const seeded = await request(app.origin, '/seed/over-tls', { method: 'POST' });
      assert.equal(seeded.status, 200, seeded.body);
      const cookie = cookieHeader(seeded.setCookies);
      await withRedisClient(group.nodes.get(await group.primaryPort()), (db) => db.command('WAIT', 1, 2000));
      const oldPrimary = await group.primaryPort();
      const load = startLoad(app, 2);
      t.after(load.stop);
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

  test('sentinels whose certificate does not verify fail the calls with a code, within connectTimeout', { skip: noTls() }, async (t) => {
    const other = { ca: certificates.pem('other-ca.crt') };
    const mw = altSession({
      redis: { sentinel: { name: group.name, nodes: [group.sentinel], tls: other }, tls: tls(), connectTimeout: 1000, commandTimeout: 3000 },
      session: { secret: SECRET, refreshErrors: 'next' },
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
