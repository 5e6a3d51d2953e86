'use strict';

// What watching costs: the CPU a request's session work takes with
// OpenTelemetry's metrics SDK registered and a tracing subscriber (as an app
// with an APM agent has them), against none. The HTTP benchmark measures the
// same pair (ours, ours-observed) through Express, but a few percent is
// within its round-to-round noise on a shared machine; here two processes,
// one of each, run the work of GET /write (the middleware's refresh, a `get`,
// a `set`, 50 requests at a time, on one Redis) in alternating blocks, and
// each block's CPU per request is counted by the process itself.
//
//   node bench/observed.js [--quick]
//
// Prints the median of each, their ratio, and the added microseconds per
// request; writes bench/results/observed-latest.json for the report.

const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { observe } = require('./observe');

const QUICK = process.argv.includes('--quick');
const BLOCKS = QUICK ? 3 : 15; // per process, alternating (the first two warm up)
const REQUESTS = QUICK ? 5000 : 20000; // per block
const CONCURRENCY = 50;
const WARMUP = QUICK ? 0 : 2; // blocks left out of the median: the JIT is still at work
const SESSIONS = 200;
const SECRET = 'alt-session benchmark secret';

if (process.argv[2] === '--child') child(process.argv[3] === 'observed', Number(process.argv[4]));
else main();

async function main() {
  const { startRedis } = require('../__test__/servers/redis');
  const redis = await startRedis();
  const children = ['plain', 'observed'].map((mode) => {
    const worker = fork(__filename, ['--child', mode, String(redis.port)], { stdio: 'inherit' });
    return { mode, worker, ready: message(worker), blocks: [] };
  });
  try {
    await Promise.all(children.map((c) => c.ready));
    for (let block = 0; block < BLOCKS; block++) {
      for (const c of block % 2 ? [...children].reverse() : children) {
        const answer = message(c.worker);
        c.worker.send({ requests: REQUESTS });
        c.blocks.push((await answer).cpuUsPerRequest);
      }
    }
  } finally {
    for (const c of children) c.worker.kill();
    await redis.stop();
  }
  const [plain, observed] = children.map((c) => median(c.blocks.slice(WARMUP)));
  const result = {
    command: `node bench/observed.js${QUICK ? ' --quick' : ''}`,
    date: new Date().toISOString(),
    blocks: BLOCKS,
    requestsPerBlock: REQUESTS,
    plainCpuUs: round(plain),
    observedCpuUs: round(observed),
    addedCpuUs: round(observed - plain),
    ratio: round(observed / plain, 3),
    perBlock: Object.fromEntries(children.map((c) => [c.mode, c.blocks.map((x) => round(x))])),
  };
  console.log(
    `session work of GET /write, CPU per request (median of ${BLOCKS - WARMUP} blocks of ${REQUESTS}): ` +
      `${result.plainCpuUs} µs plain, ${result.observedCpuUs} µs observed: +${result.addedCpuUs} µs (${result.ratio}x)`
  );
  const results = path.join(__dirname, 'results');
  fs.mkdirSync(results, { recursive: true });
  fs.writeFileSync(path.join(results, 'observed-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
}

/** One process: the middleware (watched or not), running blocks of requests when told. */
async function child(observed, redisPort) {
  if (observed) observe();
  const altSession = require('..');
  const mw = altSession({ redis: { host: '127.0.0.1', port: redisPort }, session: { secret: SECRET, tti: 3600 } });
  const cookies = [];
  for (let i = 0; i < SESSIONS; i++) {
    const { session, setCookie } = await run(mw);
    await session.set('n', 0);
    cookies.push(setCookie.split(';')[0]);
  }
  process.on('message', async ({ requests }) => {
    const before = process.cpuUsage();
    let next = 0;
    const lane = async () => {
      while (next < requests) {
        const { session } = await run(mw, cookies[next++ % SESSIONS]);
        const n = await session.get('n');
        await session.set('n', n + 1);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, lane));
    const used = process.cpuUsage(before);
    process.send({ cpuUsPerRequest: (used.user + used.system) / requests });
  });
  process.send({ ready: true });
}

/** The middleware on a bare request with `cookie`: its `req.session` and the Set-Cookie it sent. */
function run(mw, cookie) {
  const req = { headers: cookie ? { cookie } : {}, socket: {}, secure: false };
  const headers = {};
  const res = { getHeader: (name) => headers[name], setHeader: (name, value) => (headers[name] = value), headersSent: false };
  return new Promise((resolve, reject) =>
    mw(req, res, (err) => {
      const setCookie = [].concat(headers['Set-Cookie'] || headers['set-cookie'] || [])[0];
      return err ? reject(err) : resolve({ session: req.session, setCookie });
    })
  );
}

function message(worker) {
  return new Promise((resolve) => worker.once('message', resolve));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round(x, digits = 2) {
  return Number(x.toFixed(digits));
}
