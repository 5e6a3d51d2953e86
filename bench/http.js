'use strict';

// Requests per second of an Express app with each session middleware, over
// real HTTP: bare Express (no session middleware), bare Express awaiting the
// Redis commands of a session on ioredis (`bare-redis`: no session logic), alt-session (awaiting the idle refresh,
// and not), the original alt-session@0.0.1, and express-session + connect-redis;
// over TLS to a second redis-server (throwaway certificates), and on a Redis
// Cluster of 3 primaries (/write only): alt-session against express-session +
// connect-redis on ioredis.
//
//   node bench/http.js [--quick] [--configs bare,ours] [--routes /write]
//
// BENCH_APP_NODE_ARGS adds Node options to every app process, to profile one:
//   BENCH_APP_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/http.js --configs ours
//
// One private redis-server; each configuration runs in its own child process
// (bench/http-app.js) and autocannon drives it from this process. Every request
// carries the cookie of an existing session, rotating through a pool created
// beforehand, so each one is a returning visitor; but on `/new`, a new visitor
// (GET /none without a cookie, each one starting a session). After a warm-up, rounds are
// interleaved (every configuration x route once per round, starting the round
// with a different configuration) and the median of the rounds counts. Then
// the session's own cost is measured again in adjacent pairs (see PAIRS).

const { fork, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const autocannon = require('autocannon');
const { startRedis, freePort } = require('../__test__/servers/redis');
const { makeCertificates } = require('../__test__/servers/certificates');
const { startCluster } = require('../__test__/servers/cluster');
const { connectRedis, replicaOnline } = require('../__test__/servers/redis-client');
const { until } = require('../__test__/servers/sentinel');
const { median, rotated } = require('./rounds');

const QUICK = process.argv.includes('--quick');
const SETTINGS = {
  connections: 50,
  seconds: QUICK ? 1 : 5, // per measurement
  rounds: QUICK ? 1 : 5, // rounds of one configuration differ by up to 25% on a shared VM: median of 5
  warmupSeconds: 1, // per configuration x route, before the first round
  sessions: 200, // the pool of existing sessions each app gets requests for
  pairRounds: QUICK ? 1 : 6, // of the own-cost pairs (see PAIRS)
  pairSeconds: QUICK ? 1 : 2,
};
const ALL_CONFIGS = [
  'bare',
  'bare-cookie-parser',
  'bare-redis',
  'ours',
  'ours-cookie-parser',
  'ours-signed-in',
  'ours-nonblocking',
  'ours-lazy',
  'original',
  'express-session',
  'ours-express',
  'ours-tls',
  'express-session-tls',
  'ours-cluster',
  'express-session-cluster',
  'ours-durable',
  'ours-observed',
];
const TLS_CONFIGS = new Set(['ours-tls', 'express-session-tls']);
// On a 3-primary Redis Cluster, measured on /write only.
const CLUSTER_CONFIGS = new Set(['ours-cluster', 'express-session-cluster']);
// Durable writes (redis.waitReplicas: 1) on a primary of their own with one replica, /write only.
const DURABLE_CONFIGS = new Set(['ours-durable']);
// session.lazy differs from ours only for new visitors: /new only.
const LAZY_CONFIGS = new Set(['ours-lazy']);
// express-session's API (express-session and ours): also /passport.
const EXPRESS_STYLE_CONFIGS = new Set(['express-session', 'ours-express']);
// `/new` is GET /none from new visitors: no cookie, so every request starts a session.
// `/passport`: a passport-style route (read passport.user, change one property).
const ALL_ROUTES = ['/none', '/read', '/write', '/new', '/passport'];
// A subset (for development) is measured the same way but never becomes http-latest.json.
const CONFIGS = listArgument('--configs', ALL_CONFIGS);
const ROUTES = listArgument('--routes', ALL_ROUTES);
const PARTIAL = CONFIGS.length < ALL_CONFIGS.length || ROUTES.length < ALL_ROUTES.length;
const RESULTS = path.join(__dirname, 'results');
const APP = path.join(__dirname, 'http-app.js');

/** `--name a,b` as a list checked against `all`; `all` when absent. */
function listArgument(name, all) {
  const at = process.argv.indexOf(name);
  if (at < 0) return all;
  const list = String(process.argv[at + 1] || '')
    .split(',')
    .filter(Boolean);
  const unknown = list.filter((item) => !all.includes(item));
  if (list.length === 0 || unknown.length > 0) {
    throw new Error(`${name}: expected a comma-separated subset of ${all.join(',')}`);
  }
  return list;
}

// Everything started here, so that every exit path can stop it.
const children = new Set();
let redis = null;
let tlsRedis = null; // the same, serving TLS, for the *-tls configurations
let durableRedis = null; // a primary and its replica, for ours-durable
let replica = null;
let certificates = null;
let cluster = null; // 3 primaries and 3 replicas, for the *-cluster configurations

// Every pooled session signed in (login()): /read and /write as `ours`, with sessions per user on.
const SIGNED_IN_CONFIGS = new Set(['ours-signed-in']);

// No session: nothing to pool but a cookie (bare-cookie-parser's signed one, bare-redis's key), nothing to check.
const BASELINE_CONFIGS = new Set(['bare', 'bare-cookie-parser', 'bare-redis']);
// OpenTelemetry metrics and a tracing subscriber on: /write only, beside `ours`.
const OBSERVED_CONFIGS = new Set(['ours-observed']);

/**
 * The session's own cost, each measured against its baseline in adjacent
 * runs: the rounds above put minutes between two configurations, over which
 * a shared host's speed drifts by more than the few microseconds these
 * figures are. Each pair round runs baseline, session, session, baseline (or
 * the reverse) on one route, and the median round counts.
 */
const PAIRS = [
  { config: 'ours', baseline: 'bare', routes: ['/none', '/read', '/write'] },
  { config: 'ours', baseline: 'bare-redis', routes: ['/none', '/read', '/write'] },
  { config: 'ours-cookie-parser', baseline: 'bare-cookie-parser', routes: ['/none', '/read', '/write'] },
  { config: 'ours-signed-in', baseline: 'ours', routes: ['/read', '/write'] },
];

/** The routes a configuration is measured on. */
function routesOf(config) {
  if (CLUSTER_CONFIGS.has(config) || DURABLE_CONFIGS.has(config) || OBSERVED_CONFIGS.has(config)) {
    return ROUTES.filter((route) => route === '/write');
  }
  if (LAZY_CONFIGS.has(config)) return ROUTES.filter((route) => route === '/new');
  if (SIGNED_IN_CONFIGS.has(config)) return ROUTES.filter((route) => route === '/read' || route === '/write');
  if (!EXPRESS_STYLE_CONFIGS.has(config)) return ROUTES.filter((route) => route !== '/passport');
  return ROUTES;
}

// ---------------------------------------------------------------------------
// Processes

/** Starts one app in its own process; resolves once it listens. */
async function startApp(config, redisPort) {
  const port = await freePort();
  const child = fork(APP, [config, String(port), String(redisPort)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: (process.env.BENCH_APP_NODE_ARGS || '').split(' ').filter(Boolean),
    env: {
      ...process.env,
      BENCH_TLS_CA: certificates ? certificates.ca : '',
      BENCH_CLUSTER_NODES: cluster ? JSON.stringify(cluster.nodes) : '',
    },
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${config} app did not start within 15 s`)), 15000);
    child.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${config} app exited during start-up (${signal || code})`));
    });
  });
  return { config, port, child, pool: [], writes: 0 };
}

async function stopApp(app) {
  if (app.child.exitCode !== null || app.child.signalCode !== null) return;
  const exited = new Promise((resolve) => app.child.once('exit', resolve));
  app.child.kill('SIGTERM');
  const timer = setTimeout(() => app.child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

/** Last resort, synchronous: used on 'exit', where nothing can be awaited. */
function killEverything() {
  for (const child of children) child.kill('SIGKILL');
}

async function stopEverything() {
  agent.destroy();
  await Promise.all([...children].map((child) => stopApp({ child })));
  for (const server of [redis, tlsRedis, replica, durableRedis]) {
    if (!server || !isAlive(server.pid)) continue;
    // Bounded: the helper's stop() waits for an 'exit' that never comes if the
    // server died on its own already.
    await Promise.race([server.stop(), new Promise((resolve) => setTimeout(resolve, 3000))]);
  }
  if (certificates) certificates.remove();
  if (cluster) await Promise.race([cluster.stop(), new Promise((resolve) => setTimeout(resolve, 5000))]);
}

function isAlive(pid) {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\nhttp bench: ${signal}, stopping the apps and redis-server`);
    stopEverything().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------
// Plain HTTP helpers (setup and checks, not measured)

const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });

function get(port, route, cookie) {
  return new Promise((resolve, reject) => {
    const headers = cookie ? { cookie } : {};
    const request = http.get({ host: '127.0.0.1', port, path: route, headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    request.on('error', reject);
    // An app stuck on Redis (0.0.1 queues commands while it is down) must not hang the bench.
    request.setTimeout(10000, () => request.destroy(new Error(`GET ${route} on port ${port}: no answer in 10 s`)));
  });
}

/** `name=value` of the first Set-Cookie, as a browser would send it back. */
function cookieOf(response) {
  const setCookie = response.headers['set-cookie'];
  return setCookie ? setCookie[0].split(';')[0] : null;
}

/** Runs `task(i)` for i < count, `width` at a time. */
async function inParallel(count, width, task) {
  const results = new Array(count);
  let nextIndex = 0;
  async function worker() {
    while (nextIndex < count) {
      const i = nextIndex++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

/**
 * Creates the pool of existing sessions: one /write without a cookie each, so
 * every session holds n = 1 and the app answered with its cookie.
 */
async function createPool(app) {
  if (app.config === 'bare') return; // no cookie to pool
  app.pool = await inParallel(SETTINGS.sessions, 10, async () => {
    // Signed in first (a route of its own, see http-app.js), then as /write.
    const start = SIGNED_IN_CONFIGS.has(app.config) ? '/start' : '/write';
    const response = await get(app.port, start);
    const cookie = cookieOf(response);
    if (response.status !== 200 || !cookie) {
      throw new Error(`${app.config}: ${start} without a cookie gave ${response.status}, cookie ${cookie}`);
    }
    return cookie;
  });
}

/**
 * A session from the pool must be recognised (no new cookie) and read back:
 * otherwise every measured request would be a new visitor, which is cheaper.
 */
async function checkPool(app) {
  if (BASELINE_CONFIGS.has(app.config)) return;
  const response = await get(app.port, '/read', app.pool[0]);
  if (response.status !== 200 || response.body !== '1' || cookieOf(response)) {
    throw new Error(
      `${app.config}: a pooled session was not recognised (status ${response.status}, ` +
        `body ${JSON.stringify(response.body)}, set-cookie ${cookieOf(response)})`
    );
  }
}

/**
 * After the runs, the counters of all pooled sessions must add up to the pool
 * size plus every /write answered with 2xx (a few more are fine: requests still
 * in flight when a measurement stops are written but not counted). Fewer means
 * writes were lost.
 */
async function checkCounters(app) {
  if (BASELINE_CONFIGS.has(app.config)) return null;
  const values = await inParallel(app.pool.length, 10, async (i) => Number((await get(app.port, '/read', app.pool[i])).body));
  const sum = values.reduce((a, b) => a + b, 0);
  const expected = app.pool.length + app.writes;
  return { sum, expectedAtLeast: expected, ok: Number.isFinite(sum) && sum >= expected };
}

// ---------------------------------------------------------------------------
// Measuring

/** Clock ticks per second of /proc/<pid>/stat's CPU times (Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds a process has used (user + system, all its threads), or null
 * where /proc is not there: what a request costs the app, beside what it
 * waited for.
 */
function cpuSeconds(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * One autocannon run against one route; each request takes the next pooled
 * cookie, but on `/new`, whose requests carry none.
 */
async function measure(app, route, seconds) {
  let next = 0;
  const pool = route === '/new' ? [] : app.pool;
  const setupRequest = (request) => {
    if (pool.length > 0) request.headers.cookie = pool[next++ % pool.length];
    return request;
  };
  const cpuBefore = cpuSeconds(app.child.pid);
  const result = await autocannon({
    url: `http://127.0.0.1:${app.port}`,
    connections: SETTINGS.connections,
    duration: seconds,
    requests: [{ method: 'GET', path: route === '/new' ? '/none' : route, setupRequest }],
  });
  const cpuAfter = cpuSeconds(app.child.pid);
  const ok = result['2xx'];
  if (route === '/write') app.writes += ok;
  const cpuUs = cpuBefore === null || cpuAfter === null || !ok ? null : ((cpuAfter - cpuBefore) * 1e6) / ok;
  return {
    config: app.config,
    route,
    reqPerSec: Math.round(ok / result.duration),
    p50: result.latency.p50,
    p99: result.latency.p99,
    appCpuUs: cpuUs === null ? null : Math.round(cpuUs),
    cpuUs,
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: result.duration,
  };
}

function problemsOf(run) {
  const problems = [];
  if (run.non2xx) problems.push(`${run.non2xx} non-2xx responses`);
  if (run.errors) problems.push(`${run.errors} errors`);
  if (run.timeouts) problems.push(`${run.timeouts} timeouts`);
  if (!run.ok) problems.push('no successful response');
  const when = run.round ? ` ${run.pair ? 'pair ' : ''}round ${run.round}` : ' warm-up';
  return problems.map((p) => `${run.config} ${run.route}${when}: ${p}`);
}

/**
 * Runs PAIRS on the apps started (see PAIRS): per pair and route, each
 * round's difference and ratio of app CPU per request (the two runs of the
 * session against the two of its baseline), and their medians.
 */
async function measurePairs(apps, problems) {
  const appOf = (config) => apps.find((app) => app.config === config);
  const pairs = [];
  for (const { config, baseline, routes } of PAIRS) {
    const mine = appOf(config);
    const base = appOf(baseline);
    if (!mine || !base) continue;
    for (const route of routes.filter((r) => ROUTES.includes(r))) {
      const rounds = [];
      for (let round = 1; round <= SETTINGS.pairRounds; round++) {
        const order = round % 2 ? [base, mine, mine, base] : [mine, base, base, mine];
        const runs = [];
        for (const app of order) {
          const run = { round, pair: true, ...(await measure(app, route, SETTINGS.pairSeconds)) };
          problems.push(...problemsOf(run));
          runs.push(run);
        }
        const cpuOf = (app) => mean(runs.filter((r) => r.config === app.config).map((r) => r.cpuUs));
        const [mineUs, baseUs] = [cpuOf(mine), cpuOf(base)];
        rounds.push({ overUs: mineUs - baseUs, ratio: mineUs / baseUs });
      }
      const pair = {
        config,
        baseline,
        route,
        overUs: median(rounds.map((r) => r.overUs)),
        ratio: median(rounds.map((r) => r.ratio)),
        rounds,
      };
      pairs.push(pair);
      console.log(
        `pair ${config} over ${baseline} ${route}: ${pair.overUs.toFixed(1)} µs (${pair.ratio.toFixed(3)}x), ` +
          `rounds ${rounds.map((r) => r.overUs.toFixed(1)).join(', ')}`
      );
    }
  }
  return pairs;
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

function summarize(runs) {
  const summary = {};
  for (const config of CONFIGS) {
    summary[config] = {};
    for (const route of routesOf(config)) {
      const mine = runs.filter((r) => r.config === config && r.route === route);
      summary[config][route] = {
        reqPerSec: Math.round(median(mine.map((r) => r.reqPerSec))),
        p50: median(mine.map((r) => r.p50)),
        p99: median(mine.map((r) => r.p99)),
        appCpuUs: mine.some((r) => r.appCpuUs === null) ? null : median(mine.map((r) => r.appCpuUs)),
        rounds: mine.map((r) => r.reqPerSec),
      };
    }
  }
  return summary;
}

// ---------------------------------------------------------------------------
// Context of the run

/**
 * The version of package `name` as Node would resolve it from `fromDir`
 * (walking up the node_modules folders; some packages do not export package.json).
 */
function versionOf(name, fromDir = __dirname) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'node_modules', name, 'package.json');
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')).version;
    if (path.dirname(dir) === dir) return null;
  }
}

function machine() {
  let redisVersion = null;
  try {
    redisVersion = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))[1];
  } catch {}
  return {
    cpu: os.cpus()[0].model.trim(),
    cores: os.cpus().length,
    node: process.version,
    redis: redisVersion,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    date: new Date().toISOString(),
  };
}

function versions() {
  const originalDir = path.join(__dirname, '..', 'node_modules', 'alt-session-original');
  return {
    'alt-session': JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version,
    'alt-session-original': versionOf('alt-session-original'),
    'redis (of the original)': versionOf('redis', originalDir),
    express: versionOf('express'),
    'cookie-parser': versionOf('cookie-parser'),
    'express-session': versionOf('express-session'),
    'connect-redis': versionOf('connect-redis'),
    'redis (of connect-redis)': versionOf('redis'),
    autocannon: versionOf('autocannon'),
  };
}

/**
 * Every run is kept under its date; http-latest.json (what the report reads)
 * is replaced only by a run without problems.
 */
function writeResults(data) {
  fs.mkdirSync(RESULTS, { recursive: true });
  const stamp = data.machine.date.replace(/[:.]/g, '-');
  const json = `${JSON.stringify(data, null, 2)}\n`;
  const dated = path.join(RESULTS, `http-${stamp}.json`);
  fs.writeFileSync(dated, json);
  const written = [path.relative(process.cwd(), dated)];
  if (data.problems.length === 0 && !PARTIAL) {
    // Written beside, then renamed: a reader never sees half a file.
    const latest = path.join(RESULTS, 'http-latest.json');
    fs.writeFileSync(`${latest}.tmp`, json);
    fs.renameSync(`${latest}.tmp`, latest);
    written.push(path.relative(process.cwd(), latest));
  }
  return written;
}

function printSummary(summary) {
  const pad = (s, n) => String(s).padStart(n);
  console.log(`\n${'config'.padEnd(18)}${ROUTES.map((r) => pad(`${r} req/s`, 14) + pad('p99 ms', 8) + pad('CPU µs', 8)).join('')}`);
  for (const config of CONFIGS) {
    const cells = ROUTES.map((r) => {
      const cell = summary[config][r];
      return cell ? pad(cell.reqPerSec, 14) + pad(cell.p99, 8) + pad(cell.appCpuUs ?? '-', 8) : pad('-', 14) + pad('-', 8) + pad('-', 8);
    });
    console.log(`${config.padEnd(18)}${cells.join('')}`);
  }
}

// ---------------------------------------------------------------------------

async function main() {
  const info = machine();
  console.log(
    `http bench: ${CONFIGS.length} configs x ${ROUTES.length} routes, ${SETTINGS.connections} connections, ` +
      `${SETTINGS.rounds} round(s) of ${SETTINGS.seconds} s, ${SETTINGS.sessions} sessions per app`
  );
  redis = await startRedis();
  if (CONFIGS.some((config) => TLS_CONFIGS.has(config))) {
    certificates = makeCertificates();
    tlsRedis = await startRedis({ tls: { cert: certificates.serverCert, key: certificates.serverKey, ca: certificates.ca } });
  }
  if (CONFIGS.some((config) => CLUSTER_CONFIGS.has(config))) cluster = await startCluster();
  if (CONFIGS.some((config) => DURABLE_CONFIGS.has(config))) {
    durableRedis = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(durableRedis.port)] });
    const primaryDb = connectRedis(durableRedis);
    await until(() => replicaOnline(primaryDb), 15000, 'the replica in sync');
    await primaryDb.quit();
  }
  const serverOf = (config) => (TLS_CONFIGS.has(config) ? tlsRedis : DURABLE_CONFIGS.has(config) ? durableRedis : redis);
  const apps = [];
  for (const config of CONFIGS) apps.push(await startApp(config, serverOf(config).port));
  for (const app of apps) {
    await createPool(app);
    await checkPool(app);
  }

  const problems = [];
  // Warm-up: JIT, connection pools, Redis memory. Not recorded, but checked.
  for (const app of apps) {
    for (const route of routesOf(app.config)) problems.push(...problemsOf(await measure(app, route, SETTINGS.warmupSeconds)));
  }

  const runs = [];
  for (let round = 1; round <= SETTINGS.rounds; round++) {
    for (const app of rotated(apps, round - 1)) {
      for (const route of routesOf(app.config)) {
        const run = { round, ...(await measure(app, route, SETTINGS.seconds)) };
        runs.push(run);
        problems.push(...problemsOf(run));
        console.log(
          `round ${round} ${app.config.padEnd(17)} ${route.padEnd(7)} ${String(run.reqPerSec).padStart(7)} req/s` +
            `  p50 ${run.p50} ms  p99 ${run.p99} ms${run.non2xx || run.errors ? `  non-2xx ${run.non2xx} errors ${run.errors}` : ''}`
        );
      }
    }
  }

  const pairs = await measurePairs(apps, problems);

  const counters = {};
  // Only meaningful (and only quick: 0.0.1 hangs while Redis is away) after clean runs.
  for (const app of problems.length ? [] : apps) {
    const check = await checkCounters(app);
    if (!check) continue;
    counters[app.config] = check;
    if (!check.ok) problems.push(`${app.config}: lost writes, counters add up to ${check.sum}, expected at least ${check.expectedAtLeast}`);
  }

  const summary = summarize(runs);
  const written = writeResults({
    machine: info,
    command: ['node bench/http.js', ...process.argv.slice(2)].join(' '),
    settings: SETTINGS,
    versions: versions(),
    configs: CONFIGS,
    routes: ROUTES,
    summary,
    pairs,
    counters,
    problems,
    runs,
  });
  printSummary(summary);
  console.log(`\nwrote ${written.join(' and ')}`);
  return problems;
}

main()
  .then(async (problems) => {
    if (problems.length) {
      process.exitCode = 1; // set first: whatever happens while stopping, this run failed
      console.error(`\nhttp bench FAILED: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    }
    await stopEverything();
  })
  .catch(async (err) => {
    process.exitCode = 1;
    console.error(`http bench FAILED: ${err.stack || err}`);
    await stopEverything().catch(() => {});
    process.exit(1);
  });
