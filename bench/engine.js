'use strict';

// Session operations per second without HTTP: `req.session.get` / `set` of
// alt-session against ioredis and node-redis issuing the same Redis commands
// (and, on a Redis Cluster of 3 primaries, alt-session against ioredis.Cluster)
// (HGET; MULTI HSET EXPIRE EXEC), at 1 and 64 operations in flight, and
// redis-benchmark for the same commands as the server's own limit.
//
//   node bench/engine.js [--quick]
//
// Every client runs in this one process against a private redis-server; the
// clients take turns (interleaved rounds, each round in a different order)
// and the median of the rounds counts. Each measurement starts after a full
// GC: the clients share one heap, and whoever ran right after a client that
// allocates 10 KB per operation would otherwise pay for its garbage.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');

const { startRedis } = require('../__test__/servers/redis');
const { startCluster } = require('../__test__/servers/cluster');
const { clients } = require('./clients');
const { median, rotated } = require('./rounds');

const QUICK = process.argv.includes('--quick');
const SECONDS = QUICK ? 1 : 3;
const ROUNDS = QUICK ? 1 : 5; // at 1 in flight the clients are within a few % of each other: median of 5
const IN_FLIGHT = [1, 64];
const RESULTS = path.join(__dirname, 'results');

/** Runs `op` with `inFlight` concurrent callers for `seconds`; returns ops/s. */
async function measure(op, inFlight, seconds) {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  async function caller() {
    while (performance.now() < deadline) {
      await op();
      done++;
    }
  }
  const started = performance.now();
  await Promise.all(Array.from({ length: inFlight }, caller));
  return done / ((performance.now() - started) / 1000);
}

/**
 * redis-benchmark for the same commands: the server's own ceiling. Like our
 * engine, it keeps `inFlight` commands pipelined on one connection (`-P`):
 * as many connections each waiting for its reply would measure wake-ups, a
 * "limit" any pipelining client passes.
 */
function redisBenchmark(port, key, inFlight) {
  const requests = QUICK ? 20000 : 200000;
  const commands = {
    'redis-benchmark get': ['hget', key, 'n'],
    'redis-benchmark set': ['hset', key, 'n', '1'],
  };
  return Object.entries(commands).map(([name, command]) => {
    const out = execFileSync('redis-benchmark', ['-p', String(port), '-c', '1', '-P', String(inFlight), '-n', String(requests), '-q', '--csv', ...command], {
      encoding: 'utf8',
    });
    // --csv: a header line, then "name","rps",...
    const row = out.trim().split('\n').pop().split(',');
    return { name, inFlight, opsPerSec: Math.round(Number(JSON.parse(row[1]))) };
  });
}

/** A full garbage collection, without needing `node --expose-gc`. */
const collectGarbage = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc');
})();

function machine() {
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)[1];
  return {
    cpu: os.cpus()[0].model,
    cores: os.cpus().length,
    node: process.version,
    redis: redisVersion,
    date: new Date().toISOString(),
  };
}

async function main() {
  const redis = await startRedis();
  const cluster = await startCluster();
  const { ops, close, key } = await clients(redis.port, cluster.nodes);
  try {
    const samples = {};
    for (const [_name, op] of Object.entries(ops)) await measure(op, 64, QUICK ? 0.3 : 1); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const inFlight of IN_FLIGHT) {
        for (const [name, op] of rotated(Object.entries(ops), round)) {
          const id = `${name}@${inFlight}`;
          collectGarbage();
          if (!samples[id]) samples[id] = { name, inFlight, values: [] };
          samples[id].values.push(await measure(op, inFlight, SECONDS));
        }
      }
    }
    const results = Object.values(samples).map(({ name, inFlight, values }) => ({
      name,
      inFlight,
      opsPerSec: Math.round(median(values)),
    }));
    for (const inFlight of IN_FLIGHT) results.push(...redisBenchmark(redis.port, key, inFlight));
    const report = { machine: machine(), command: `node bench/engine.js${QUICK ? ' --quick' : ''}`, results };
    fs.mkdirSync(RESULTS, { recursive: true });
    const json = JSON.stringify(report, null, 2);
    fs.writeFileSync(path.join(RESULTS, 'engine-latest.json'), json);
    fs.writeFileSync(path.join(RESULTS, `engine-${report.machine.date.replace(/[:.]/g, '-')}.json`), json);
    console.table(results);
  } finally {
    await close();
    await redis.stop();
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
