'use strict';

// What operators see (lib/events.js): the middleware's events on a Redis
// kill and restart, an `error` nobody listens to that does not crash the
// process, `mw.ping()`, and the `DEBUG=alt-session` lines of a child process,
// which name no session id, value or password. Both entry points, on a real
// Redis the tests start, over real HTTP.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const express = require('express');
const altSession = require('..');
const session = require('../express-session');
const { startRedis } = require('../__test__/servers/redis');
const { listen, request } = require('./helpers/http');

const SECRET = 'operating secret';

/** Resolves the next `event` of `emitter`, or rejects after `ms`. */
function next(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${ms} ms`)), ms);
    emitter.once(event, (detail) => {
      clearTimeout(timer);
      resolve(detail);
    });
  });
}

const ENTRY_POINTS = {
  'alt-session': (redis) => altSession({ redis, session: { secret: SECRET } }),
  'alt-session/express-session': (redis) => session({ redis, secret: SECRET, resave: false, saveUninitialized: true }),
};

for (const [entry, create] of Object.entries(ENTRY_POINTS)) {
  describe(`${entry}: events and ping`, () => {
    let redis;
    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis.stop();
    });

    test("connect, then disconnect when Redis is killed, an 'error' for each failed connection (none thrown without a listener), connect again after its restart", async () => {
      const mw = create(redis.options);
      const app = express();
      app.use(mw);
      app.get('/', (req, res) => res.send('ok'));
      const server = await listen(app);
      try {
        const connected = next(mw, 'connect');
        assert.equal((await request(server.origin, '/')).status, 200);
        assert.deepEqual(await connected, { host: '127.0.0.1', port: redis.port });
        assert.equal(typeof (await mw.ping()), 'number');

        const lost = next(mw, 'disconnect');
        await redis.stop();
        const disconnect = await lost;
        assert.equal(disconnect.code, 'ERR_SESSION_CONNECTION');

        // No 'error' listener: the failures are logged, never thrown.
        assert.equal(mw.listenerCount('error'), 0);
        await assert.rejects(mw.ping(), { code: 'ERR_SESSION_CONNECTION' });
        const errors = [];
        mw.on('error', (err) => errors.push(err));
        await assert.rejects(mw.ping(), { code: 'ERR_SESSION_CONNECTION' });
        assert.ok(errors.length >= 1, 'the failed connection is an error event');
        assert.ok(
          errors.every((err) => err instanceof Error && err.code === 'ERR_SESSION_CONNECTION'),
          errors.map((e) => e.code).join()
        );

        await redis.start();
        const reconnected = next(mw, 'connect');
        assert.equal((await request(server.origin, '/')).status, 200);
        assert.deepEqual(await reconnected, { host: '127.0.0.1', port: redis.port });
        assert.ok((await mw.ping()) >= 0);
      } finally {
        await server.close();
        await mw.close();
      }
    });
  });
}

describe('a refresh that fails without failing the route', () => {
  let redis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test("is an 'error' event (refreshErrors: 'ignore', and awaitTouch: false), and the route still answers", async () => {
    for (const extra of [{}, { awaitTouch: false }]) {
      const mw = altSession({ redis: { ...redis.options, commandTimeout: 300 }, session: { secret: SECRET, ...extra } });
      const app = express();
      app.use(mw);
      app.get('/', (req, res) => res.send('ok'));
      const server = await listen(app);
      try {
        const first = await request(server.origin, '/');
        assert.equal(first.status, 200);
        const cookie = first.setCookies[0].split(';')[0];
        await redis.stop();
        const failed = next(mw, 'error');
        assert.equal((await request(server.origin, '/', { cookie })).status, 200, JSON.stringify(extra));
        assert.equal((await failed).code, 'ERR_SESSION_CONNECTION');
      } finally {
        await server.close();
        await mw.close();
        await redis.start();
      }
    }
  });
});

test('ping() in memory', async () => {
  for (const mw of [altSession.mock({ session: { secret: SECRET } }), session.mock({ secret: SECRET })]) {
    const ms = await mw.ping();
    assert.ok(Number.isFinite(ms) && ms >= 0, String(ms));
    await new Promise((resolve, reject) => mw.ping((err, value) => (err ? reject(err) : resolve(assert.equal(typeof value, 'number')))));
  }
});

describe('DEBUG=alt-session', () => {
  let redis;
  before(async () => {
    redis = await startRedis({ password: 'a-password-never-logged' });
  });
  after(async () => {
    await redis.stop();
  });

  test('logs connects and disconnects to stderr, with no session id, value or password', async () => {
    // The child: an app whose one request stores a value, then Redis goes away under it.
    const script = `
      const express = require('express');
      const altSession = require(${JSON.stringify(path.join(__dirname, '..'))});
      const mw = altSession({ redis: ${JSON.stringify(redis.options)}, session: { secret: 'k' } });
      const app = express();
      app.use(mw);
      app.get('/', (req, res, next) => req.session.set('card', 'a-value-never-logged').then(() => res.send(req.session.id), next));
      const server = app.listen(0, async () => {
        const res = await fetch('http://127.0.0.1:' + server.address().port + '/');
        process.stdout.write(await res.text());
        process.send('stop redis');
        process.on('message', async () => {
          // The first may go out on the connection before its loss is seen, and fail with it;
          // the second needs a new connection, which fails (an 'error').
          await mw.ping().catch(() => {});
          await mw.ping().catch(() => {});
          server.closeAllConnections();
          server.close();
          await mw.close();
          process.disconnect();
        });
      });
    `;
    const child = spawn(process.execPath, ['-e', script], {
      cwd: path.join(__dirname, '..'),
      env: { ...process.env, DEBUG: 'alt-session', DEBUG_COLORS: 'no' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('message', async () => {
      await redis.stop();
      child.send('go on');
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    await redis.start();
    assert.equal(code, 0, stderr);
    const id = stdout.trim();
    assert.match(id, /^[\w-]{43}$/, 'the child printed its session id');
    assert.match(stderr, new RegExp(`alt-session connect 127\\.0\\.0\\.1:${redis.port}`));
    assert.match(stderr, /alt-session disconnect 127.0.0.1:\d+ ERR_SESSION_CONNECTION/);
    assert.match(stderr, /alt-session error ERR_SESSION_CONNECTION/);
    for (const secret of [id, 'a-value-never-logged', 'a-password-never-logged']) assert.ok(!stderr.includes(secret), `the log holds ${secret}:\n${stderr}`);
  });
});

test("diagnostics_channel: tracingChannel('alt-session:operation') traces each operation by name, with no id or value", async () => {
  const channel = require('node:diagnostics_channel').tracingChannel('alt-session:operation');
  const seen = [];
  const handlers = {
    start: (context) => seen.push(['start', context.operation]),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (context) => seen.push(['asyncEnd', context.operation, Object.keys(context).sort().join()]),
    error: (context) => seen.push(['error', context.operation, context.error.code]),
  };
  const mw = altSession.mock({ session: { secret: SECRET } });
  const app = express();
  app.use(mw);
  app.get('/', async (req, res, next) => {
    try {
      await req.session.set('card', 'a-value-never-traced');
      await req.session.get('card');
      await req.session.incr('card').catch((err) => err);
      res.send(req.session.id);
    } catch (err) {
      next(err);
    }
  });
  const server = await listen(app);
  channel.subscribe(handlers);
  try {
    const { status, body: id } = await request(server.origin, '/');
    assert.equal(status, 200);
    const started = seen.filter(([what]) => what === 'start').map(([, operation]) => operation);
    assert.deepEqual(started, ['start', 'create', 'get', 'incr'], 'the new visitor recorded, then the route calls');
    assert.deepEqual(
      seen.filter(([what]) => what !== 'start'),
      [
        ['asyncEnd', 'start', 'operation'],
        ['asyncEnd', 'create', 'operation'],
        ['asyncEnd', 'get', 'operation'],
        ['error', 'incr', 'ERR_SESSION_ARGUMENT'],
        ['asyncEnd', 'incr', 'error,operation'],
      ]
    );
    for (const secret of [id, 'a-value-never-traced']) assert.ok(!JSON.stringify(seen).includes(secret));
  } finally {
    channel.unsubscribe(handlers);
    await server.close();
    await mw.close();
  }
});

test('OpenTelemetry: a middleware made before any MeterProvider records nothing; one made after it is measured', async () => {
  const { metrics } = require('@opentelemetry/api');
  const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
  const early = altSession.mock({ session: { secret: SECRET } });
  await early.ping();
  class OnDemandReader extends MetricReader {
    async onForceFlush() {}
    async onShutdown() {}
  }
  const reader = new OnDemandReader();
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  const late = altSession.mock({ session: { secret: SECRET } });
  try {
    await late.ping();
    await late.ping();
    await early.ping(); // its store records nothing, and is not among the observed ones
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics);
    const points = (name) => all.find((m) => m.descriptor.name === name).dataPoints;
    assert.equal(points('alt_session.operation.duration')[0].value.count, 2, "only the late middleware's two pings");
    assert.equal(points('alt_session.operations')[0].value, 2);
  } finally {
    metrics.disable();
    await early.close();
    await late.close();
  }
});
