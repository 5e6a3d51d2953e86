'use strict';

// Acknowledged writes lost in a planned Sentinel failover, side by side:
// alt-session against ioredis, with and without its failover detector.
//
//   node bench/failover.js [--runs 3]
//
// One Sentinel group (a primary, a replica, three sentinels with
// down-after-milliseconds 1000; __test__/servers/sentinel.js). For each client in
// turn, an Express app writes over HTTP: 4 clients, each in a loop of POST
// /write/<field> 10 ms apart, every write a new field of its own session
// (alt-session: `req.session.set`; ioredis: `HSET` on a key per client, what a
// session store would send). 500 ms into the load, `SENTINEL FAILOVER`; 2 s
// after the first sentinel names the new primary, the load stops, and every write
// that was answered 200 is looked for on the primary the sentinels name then.
// Writes missing there were acknowledged and lost: the old primary took them
// after the replica was promoted, and dropped them when it became a replica.

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const express = require('express');
const Redis = require('ioredis');
const altSession = require('..');
const { startSentinelGroup, until } = require('../__test__/servers/sentinel');
const { connectRedis } = require('../__test__/servers/redis-client');

const runsAt = process.argv.indexOf('--runs');
const RUNS = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 3;
const LANES = 4;
const PACE_MS = 10;
const RESULTS = path.join(__dirname, 'results');

/** Each client: an app whose POST /write/:field stores one field, and where that field lives. */
const CLIENTS = {
  'alt-session': (group) => {
    const mw = altSession({
      redis: { sentinel: { name: group.name, nodes: group.sentinels }, commandTimeout: 1000 },
      session: { secret: 'failover bench' },
    });
    const app = express();
    app.use(mw);
    app.post('/write/:field', (req, res, next) =>
      req.session.set(req.params.field, Date.now()).then(() => res.json({ key: `session:${req.session.id}` }), next)
    );
    return { app: answerErrors(app), close: () => mw.close() };
  },
  ioredis: (group) => ioredisApp(group, {}),
  'ioredis (failoverDetector)': (group) => ioredisApp(group, { failoverDetector: true }),
};

/** Failed writes answer 503 with their code (counted as not acknowledged), without a stack on stderr. */
function answerErrors(app) {
  app.use((err, req, res, next) => res.status(503).json({ code: err.code })); // eslint-disable-line no-unused-vars
  return app;
}

function ioredisApp(group, options) {
  const redis = new Redis({ sentinels: group.sentinels, name: group.name, commandTimeout: 1000, ...options });
  redis.on('error', () => {});
  const app = express();
  app.post('/write/:field', (req, res, next) => {
    const key = `bench:${req.query.lane}`;
    redis.hset(key, req.params.field, Date.now()).then(() => res.json({ key }), next);
  });
  // disconnect(): no reconnection afterwards, to the sentinels either (the detector's).
  return { app: answerErrors(app), close: async () => redis.disconnect() };
}

function post(port, route, cookie) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: route, method: 'POST', headers: cookie ? { cookie } : {}, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body, setCookie: res.headers['set-cookie'] }));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve({ status: 0 }));
    req.end();
  });
}

/** One client through one planned failover: what was acknowledged, and what of it is on the new primary. */
async function run(name, group) {
  await group.healthy();
  const { app, close } = CLIENTS[name](group);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  const acknowledged = new Map(); // key -> fields
  let stopped = false;
  let sequence = 0;
  let failed = 0;
  const lanes = Array.from({ length: LANES }, async (_, lane) => {
    let cookie;
    while (!stopped) {
      const field = `w${sequence++}`;
      const r = await post(port, `/write/${field}?lane=${lane}`, cookie);
      if (r.status === 200) {
        const { key } = JSON.parse(r.body);
        if (!acknowledged.has(key)) acknowledged.set(key, []);
        acknowledged.get(key).push(field);
      } else {
        failed++;
      }
      if (!cookie && r.setCookie) cookie = r.setCookie[0].split(';')[0];
      await new Promise((resolve) => setTimeout(resolve, PACE_MS));
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const asked = Date.now();
  const before = await group.primaryPort();
  await group.admin.command('SENTINEL', 'FAILOVER', group.name);
  await until(async () => (await group.primaryPort()) !== before, 15000, 'the failover');
  const switchedAfterMs = Date.now() - asked;
  await new Promise((resolve) => setTimeout(resolve, 2000));
  stopped = true;
  await Promise.all(lanes);
  server.close();
  await close();

  const primary = connectRedis({ host: '127.0.0.1', port: await group.primaryPort() });
  let total = 0;
  let missing = 0;
  for (const [key, fields] of acknowledged) {
    const held = (await primary.command('HGETALL', key)) || {};
    total += fields.length;
    missing += fields.filter((field) => !(field in held)).length;
  }
  await primary.quit();
  return { client: name, acknowledged: total, missing, failed, switchedAfterMs };
}

async function main() {
  const group = await startSentinelGroup();
  const runs = [];
  try {
    for (let round = 1; round <= RUNS; round++) {
      for (const name of Object.keys(CLIENTS)) {
        const result = { round, ...(await run(name, group)) };
        runs.push(result);
        console.log(
          `round ${round} ${name.padEnd(28)} ${String(result.acknowledged).padStart(5)} acknowledged, ` +
            `${String(result.missing).padStart(4)} missing on the new primary, ${result.failed} failed`
        );
      }
    }
  } finally {
    await group.stop();
  }
  const summary = Object.keys(CLIENTS).map((client) => {
    const mine = runs.filter((r) => r.client === client);
    return {
      client,
      acknowledged: mine.reduce((sum, r) => sum + r.acknowledged, 0),
      missing: mine.reduce((sum, r) => sum + r.missing, 0),
      failed: mine.reduce((sum, r) => sum + r.failed, 0),
    };
  });
  fs.mkdirSync(RESULTS, { recursive: true });
  const file = path.join(RESULTS, 'failover-latest.json');
  const command = ['node bench/failover.js', ...process.argv.slice(2)].join(' ');
  fs.writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), command, lanes: LANES, paceMs: PACE_MS, summary, runs }, null, 2)}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

main().catch((err) => {
  console.error(`failover bench FAILED: ${err.stack || err}`);
  process.exit(1);
});
