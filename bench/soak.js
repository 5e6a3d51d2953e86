'use strict';

// A soak run: 200,000 requests through the HTTP benchmark's app (alt-session,
// default options; each request an atomic `incr`) on a private Redis, mixing
// returning visitors (a pool of cookies from first page views that stored
// nothing, which the client never replaces: it ignores Set-Cookie, as load
// tests and API clients do) and new visitors (no cookie). It reports the
// session keys Redis holds against the count expected (one per pooled
// session, one per new visitor: every session lives for tti = 300 s), every
// Set-Cookie a returning visitor got (its session moved: none expected), the
// increments counted against those sent, and the app's resident memory over
// time. Exits 1 when any of them is off.
//
//   node bench/soak.js [--requests 200000]      (npm run soak)
//
// Writes bench/results/soak-latest.json. Not part of `npm test`: it takes a
// minute and measures, where tests assert.

const { fork } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const autocannon = require('autocannon');
const { startRedis, freePort } = require('../__test__/servers/redis');
const { connectRedis } = require('../__test__/servers/redis-client');

const at = process.argv.indexOf('--requests');
const REQUESTS = at > 0 ? Number(process.argv[at + 1]) : 200000;
const POOL = 100;
const NEW_EVERY = 2; // every 2nd request comes from a new visitor
const RESULTS = path.join(__dirname, 'results');

function residentBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

async function startApp(redisPort) {
  const port = await freePort();
  const child = fork(path.join(__dirname, 'http-app.js'), ['ours', String(port), String(redisPort)], { stdio: 'inherit' });
  await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`the app exited (${code})`)));
  });
  return { child, port };
}

/**
 * A new visitor's cookie, as `name=value`, from a request that stores nothing
 * (a first page view): its later writes must land under that id.
 */
async function newCookie(port) {
  const res = await fetch(`http://127.0.0.1:${port}/none`);
  await res.text();
  return res.headers.get('set-cookie').split(';')[0];
}

async function main() {
  const redis = await startRedis();
  const db = connectRedis(redis);
  const app = await startApp(redis.port);
  try {
    const pool = [];
    for (let i = 0; i < POOL; i++) pool.push(await newCookie(app.port));

    const samples = [{ seconds: 0, rss: residentBytes(app.child.pid), keys: await db.command('DBSIZE') }];
    const started = Date.now();
    const sampler = setInterval(async () => {
      samples.push({ seconds: (Date.now() - started) / 1000, rss: residentBytes(app.child.pid), keys: await db.command('DBSIZE') });
    }, 2000);

    let sent = 0;
    let newVisitors = 0;
    const cookiesSet = { new: 0, returning: 0 };
    const result = await autocannon({
      url: `http://127.0.0.1:${app.port}`,
      connections: 50,
      amount: REQUESTS,
      requests: [
        {
          method: 'GET',
          path: '/incr',
          setupRequest: (request, context) => {
            context.isNew = sent++ % NEW_EVERY === 0;
            request.headers = { ...request.headers };
            if (context.isNew) {
              newVisitors++;
              delete request.headers.cookie;
            } else {
              request.headers.cookie = pool[sent % POOL];
            }
            return request;
          },
          // A Set-Cookie for a returning visitor would mean its session moved to another id.
          onResponse: (status, body, context, headers) => {
            if (headers['set-cookie'] || headers['Set-Cookie']) cookiesSet[context.isNew ? 'new' : 'returning']++;
          },
        },
      ],
    });
    clearInterval(sampler);
    const keys = await db.command('DBSIZE');
    samples.push({ seconds: (Date.now() - started) / 1000, rss: residentBytes(app.child.pid), keys });

    const expected = POOL + newVisitors;
    const counters = await Promise.all(
      pool.map(async (cookie) => Number(await (await fetch(`http://127.0.0.1:${app.port}/read`, { headers: { cookie } })).text()) || 0)
    );
    const report = {
      date: new Date().toISOString(),
      command: ['node bench/soak.js', ...process.argv.slice(2)].join(' '),
      requests: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors,
      newVisitors,
      cookiesSetForNewVisitors: cookiesSet.new,
      cookiesSetForReturningVisitors: cookiesSet.returning,
      keys,
      expectedKeys: expected,
      pooledWritesCounted: counters.reduce((a, b) => a + b, 0),
      pooledWritesSent: result.requests.total - newVisitors,
      rssMiB: samples.map((s) => [Math.round(s.seconds), +(s.rss / 2 ** 20).toFixed(1), s.keys]),
    };
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(path.join(RESULTS, 'soak-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log(`requests ${report.requests} (${report.non2xx} non-2xx, ${report.errors} errors), new visitors ${newVisitors}`);
    console.log(`Set-Cookie sent to new visitors ${cookiesSet.new}, to returning visitors ${cookiesSet.returning}`);
    console.log(`Redis keys ${keys}, expected ${expected} (pool ${POOL} + one per new visitor)`);
    console.log(`writes to pooled sessions: sent ${report.pooledWritesSent}, counted ${report.pooledWritesCounted}`);
    console.log('seconds  app RSS MiB  Redis keys');
    for (const [s, mib, k] of report.rssMiB) console.log(`${String(s).padStart(7)}  ${String(mib).padStart(11)}  ${String(k).padStart(10)}`);
    const lost = report.pooledWritesSent - report.pooledWritesCounted;
    if (keys !== expected || cookiesSet.returning || lost || report.non2xx || report.errors) process.exitCode = 1;
  } finally {
    app.child.kill('SIGTERM');
    await db.quit();
    await redis.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
