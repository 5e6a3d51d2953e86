'use strict';

// What operators count: `mw.stats()` (counted by the engine, src/stats.rs)
// and the OpenTelemetry metrics lib/metrics.js makes of it, read through
// @opentelemetry/sdk-metrics with a reader that collects on demand, as an
// exporter would. A real Redis the test starts (killed and restarted), real
// HTTP; no session id, key or value in any metric or event.
//
// The MeterProvider is registered before any middleware is made, as an app
// does (OpenTelemetry's API hands out a no-op meter until then): this file
// runs in a process of its own.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { metrics } = require('@opentelemetry/api');
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
const altSession = require('..');
const session = require('../express-session');
const { startRedis } = require('../__test__/servers/redis');
const { listen, request, cookieHeader } = require('./helpers/http');

/** Collects when asked: `await reader.collect()`. */
class OnDemandReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const reader = new OnDemandReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

const SECRET = 'metrics secret';
const VALUE = 'a-value-never-counted';

/** Every data point of `name` as `{ attributes, value }`, from one collection. */
async function points(name) {
  const { resourceMetrics } = await reader.collect();
  const all = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
  const metric = all.find((m) => m.descriptor.name === name);
  return metric ? metric.dataPoints.map(({ attributes, value }) => ({ attributes, value })) : [];
}

/** An app whose route writes, reads and fails one `incr` (ERR_SESSION_ARGUMENT). */
async function startApp(mw) {
  const app = express();
  app.use(mw);
  app.get('/', async (req, res, next) => {
    try {
      await req.session.set('card', VALUE);
      await req.session.get('card');
      await req.session.incr('card').catch(() => {});
      res.send(req.session.id);
    } catch (err) {
      next(err);
    }
  });
  app.use((err, req, res, next) => res.status(503).json({ code: err.code })); // eslint-disable-line no-unused-vars
  return listen(app);
}

describe('stats() and OpenTelemetry metrics on Redis', () => {
  let redis;
  let mw;
  let server;
  const ids = [];
  const events = []; // every event of the middleware, to check none holds an id
  before(async () => {
    redis = await startRedis();
    mw = altSession({ redis: { ...redis.options, commandTimeout: 500 }, session: { secret: SECRET } });
    for (const event of ['connect', 'disconnect', 'failover', 'error']) mw.on(event, (detail) => events.push({ event, detail, message: detail.message }));
    server = await startApp(mw);
  });
  after(async () => {
    await server.close();
    await mw.close();
    await redis.stop();
  });

  test('stats() counts each operation, its errors by code, its latency; the connection and its reconnection', async () => {
    let cookie;
    for (let i = 0; i < 5; i++) {
      const r = await request(server.origin, '/', { cookie });
      assert.equal(r.status, 200);
      ids.push(r.body);
      cookie ||= cookieHeader(r.setCookies);
    }
    let stats = mw.stats();
    // The first request started its session (start, create); the others refresh it (touch), then write.
    assert.equal(stats.operations.get.count, 5);
    assert.equal(stats.operations.incr.count, 5);
    assert.deepEqual(stats.operations.incr.errors, { ERR_SESSION_ARGUMENT: 5 });
    assert.deepEqual(stats.errors, { ERR_SESSION_ARGUMENT: 5 });
    assert.equal(stats.operations.write.count, 4);
    assert.equal(stats.operations.create.count, 1);
    const { p50, p90, p99, max } = stats.operations.get.latency;
    assert.ok(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max, JSON.stringify(stats.operations.get.latency));
    assert.equal(stats.pending, 0);
    assert.deepEqual(stats.connections, [{ host: '127.0.0.1', port: redis.port, state: 'connected' }]);
    assert.equal(stats.connects, 1);
    assert.equal(stats.reconnects, 0);

    await redis.stop();
    assert.equal((await request(server.origin, '/', { cookie })).status, 503);
    stats = mw.stats();
    assert.ok(stats.errors.ERR_SESSION_CONNECTION >= 1, JSON.stringify(stats.errors));
    assert.equal(stats.connections[0].state, 'disconnected');
    await redis.start();
    assert.equal((await request(server.origin, '/', { cookie })).status, 200);
    stats = mw.stats();
    assert.equal(stats.reconnects, 1);
    assert.equal(stats.connections[0].state, 'connected');
  });

  test('alt_session.operations counts them by op and outcome (and error.type); the duration histogram has each one by op; the connection by state', async () => {
    const operations = await points('alt_session.operations');
    const count = (operation, errorType) =>
      operations.filter((p) => p.attributes.op === operation && p.attributes['error.type'] === errorType).reduce((sum, p) => sum + p.value, 0);
    const stats = mw.stats();
    assert.equal(count('get', undefined), stats.operations.get.count - (stats.operations.get.errors.ERR_SESSION_CONNECTION || 0));
    assert.equal(count('incr', 'ERR_SESSION_ARGUMENT'), stats.operations.incr.errors.ERR_SESSION_ARGUMENT);
    assert.equal(count('incr', undefined), 0);

    const durations = await points('alt_session.operation.duration');
    const gets = durations.find((p) => p.attributes.op === 'get' && !p.attributes['error.type']);
    assert.ok(gets && gets.value.count >= 5, 'each get is in the histogram');
    assert.ok(gets.value.sum > 0 && gets.value.max < 5, `in seconds: ${gets.value.max}`);
    assert.deepEqual(gets.value.buckets.boundaries, [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]);
    assert.deepEqual(gets.attributes, { op: 'get' });
    const incrs = durations.find((p) => p.attributes.op === 'incr');
    assert.deepEqual(incrs.attributes, { op: 'incr', 'error.type': 'ERR_SESSION_ARGUMENT' });

    const connections = await points('alt_session.connection.count');
    const connected = connections.find((p) => p.attributes['alt_session.connection.state'] === 'connected');
    assert.deepEqual(connected, {
      attributes: { 'alt_session.connection.state': 'connected', 'server.address': '127.0.0.1', 'server.port': redis.port },
      value: 1,
    });
    assert.deepEqual(
      (await points('alt_session.operation.pending')).map((p) => p.value),
      [0]
    );

    // Attributes name operations, codes and the server: never an id or a value; nor do the events.
    assert.deepEqual([...new Set(events.map((e) => e.event))].sort(), ['connect', 'disconnect', 'error']);
    const everything = JSON.stringify([operations, durations, connections, events]);
    for (const secret of [...ids, VALUE, SECRET]) assert.ok(!everything.includes(secret), 'a metric holds a session id or value');
    const keys = new Set([...operations, ...durations, ...connections].flatMap((p) => Object.keys(p.attributes)));
    assert.deepEqual([...keys].sort(), ['alt_session.connection.state', 'error.type', 'op', 'outcome', 'server.address', 'server.port']);
  });
});

test('the express-session entry point, in memory: its loads are counted too', async () => {
  const mw = session.mock({ secret: SECRET, resave: false, saveUninitialized: false });
  const app = express();
  app.use(mw);
  app.get('/', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.send(String(req.session.views));
  });
  const server = await listen(app);
  const loads = async () => (await points('alt_session.operations')).filter((p) => p.attributes.op === 'load').reduce((sum, p) => sum + p.value, 0);
  try {
    let cookie;
    for (let i = 1; i <= 3; i++) {
      const r = await request(server.origin, '/', { cookie });
      assert.equal(r.body, String(i));
      cookie ||= cookieHeader(r.setCookies, 'connect.sid');
    }
    assert.equal(mw.stats().operations.load.count, 2, 'the second and third requests loaded their session');
    assert.deepEqual(mw.stats().connections, [], 'no connection in memory');
    assert.equal(await loads(), 2);
  } finally {
    await server.close();
    await mw.close();
  }
});
