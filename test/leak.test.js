'use strict';

// Memory must level off: after a warm-up, hundreds of thousands of session
// operations (new sessions, reads, writes, errors) on Redis and on the memory
// store leave the JS heap and the resident set where they were. This checks
// the shape of memory use, never a time. The work runs in a child started
// with --expose-gc, so every sample is taken after a full collection.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { useRedis } = require('./helpers/fixtures');

const ROUNDS = 12;
const OPS_PER_ROUND = 25_000;
const WARM_UP_ROUNDS = 4;

if (process.argv[2] === 'worker') {
  worker(process.argv[3], Number(process.argv[4])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  const redis = useRedis();

  for (const backend of ['redis', 'memory']) {
    test(`memory levels off over ${ROUNDS * OPS_PER_ROUND} operations on ${backend}`, () => {
      const output = execFileSync(
        process.execPath,
        [
          '--expose-gc',
          // A young generation of fixed size: V8 otherwise doubles it when it
          // sees fit, +16 MiB of resident memory at once, which is no leak.
          '--min-semi-space-size=16',
          '--max-semi-space-size=16',
          __filename,
          'worker',
          backend,
          String(redis.server.port),
        ],
        { encoding: 'utf8', timeout: 240_000 }
      );
      const samples = JSON.parse(output);
      assert.equal(samples.length, ROUNDS);
      const settled = samples.slice(WARM_UP_ROUNDS);
      const heapGrowth = settled.at(-1).heap - settled[0].heap;
      const rssGrowth = Math.max(...settled.map((s) => s.rss)) - settled[0].rss;
      const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      const shape = samples.map((s) => `${mb(s.heap)}/${mb(s.rss)}`).join(', ');
      // A leak of even 100 bytes per operation would add 19 MiB here.
      assert.ok(heapGrowth < 2 * 2 ** 20, `JS heap grew by ${mb(heapGrowth)} after warm-up: ${shape}`);
      assert.ok(rssGrowth < 16 * 2 ** 20, `RSS grew by ${mb(rssGrowth)} after warm-up: ${shape}`);
    });
  }
}

/** Runs rounds of mixed session work and prints heap/RSS after each round. */
async function worker(backend, port) {
  const altSession = require('..');
  const options = { redis: { port }, session: { secret: 'leak', tti: 60, prefix: `leak-${backend}` } };
  const mw = backend === 'redis' ? altSession(options) : altSession.mock(options);
  const open = (cookie) =>
    new Promise((resolve) => {
      const req = { headers: { cookie }, secure: false };
      const res = { getHeader() {}, setHeader() {}, headersSent: false };
      mw(req, res, () => resolve(req.session));
    });

  // A fixed pool of sessions (the memory store keeps live sessions, by design).
  const pool = [];
  for (let i = 0; i < 64; i++) pool.push(await open());

  const samples = [];
  for (let round = 0; round < ROUNDS; round++) {
    let done = 0;
    await Promise.all(
      pool.map(async (session, i) => {
        while (done < OPS_PER_ROUND) {
          done += 4;
          await session.set('n', { i, round, text: 'x'.repeat(i) });
          await session.get('n');
          await session.mget(['n', 'missing']);
          await session.set('', 1).catch(() => {}); // an error path too
        }
      })
    );
    await open(); // a new visitor, never stored
    global.gc();
    samples.push({ heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss });
  }
  await mw.close();
  process.stdout.write(JSON.stringify(samples));
}
