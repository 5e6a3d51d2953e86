'use strict';

// Memory of session operations, without HTTP:
//
// 1. Resident set and JS heap over one million session operations of ours on
//    Redis (get and set, 64 in flight), sampled after a full GC every 100,000:
//    after a warm-up they must level off.
// 2. JS heap bytes allocated per operation, for ours, ioredis and node-redis
//    (the same commands as bench/engine.js): the work a call leaves for the
//    garbage collector. Measured with a young generation large enough that no
//    collection runs during the count (checked: a count a GC ran during is discarded
//    and retried), as the growth of the used heap divided by the operations.
//    Native (Rust) allocations are not counted.
//
//   node bench/memory.js [--quick]
//
// Each part runs in a child process with --expose-gc; the second with a
// 256 MiB semi-space (which would inflate the first one's resident set).

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const QUICK = process.argv.includes('--quick');
const RESULTS = path.join(__dirname, 'results');
const TOTAL_OPS = QUICK ? 200_000 : 1_000_000;
const SAMPLE_EVERY = TOTAL_OPS / 10;
const IN_FLIGHT = 64;
const ALLOCATION_OPS = 20_000; // per count, at first: inside the young generation for most clients

if (process.argv[2] === 'child') {
  const part = { residency, allocations }[process.argv[3]];
  child(part, Number(process.argv[4])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  parent().catch((err) => {
    console.error(`memory bench FAILED: ${err.stack || err}`);
    process.exit(1);
  });
}

async function parent() {
  const { startRedis } = require('../__test__/servers/redis');
  const redis = await startRedis();
  try {
    const inChild = (part, flags = []) =>
      JSON.parse(
        execFileSync(process.execPath, ['--expose-gc', ...flags, __filename, 'child', part, String(redis.port)], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        })
      );
    const report = {
      command: `node bench/memory.js${QUICK ? ' --quick' : ''}`,
      date: new Date().toISOString(),
      totalOps: TOTAL_OPS,
      inFlight: IN_FLIGHT,
      ...inChild('residency'),
      allocations: inChild('allocations', ['--max-semi-space-size=256', '--min-semi-space-size=256']),
    };
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(path.join(RESULTS, 'memory-latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    const mb = (bytes) => (bytes / 2 ** 20).toFixed(1);
    console.log(`RSS / heap (MiB) every ${SAMPLE_EVERY} operations:`);
    console.log(report.samples.map((s) => `${mb(s.rss)}/${mb(s.heap)}`).join('  '));
    console.log(`growth after warm-up: RSS ${mb(report.growth.rss)} MiB, heap ${mb(report.growth.heap)} MiB`);
    console.table(report.allocations);
    console.log('wrote bench/results/memory-latest.json');
  } finally {
    await redis.stop();
  }
}

async function child(part, redisPort) {
  const { clients } = require('./clients');
  const { ops, close } = await clients(redisPort);
  const result = await part(ops);
  await close();
  process.stdout.write(JSON.stringify(result));
}

/** Runs `op` `count` times, IN_FLIGHT at a time. */
async function run(op, count) {
  let left = count;
  async function caller() {
    while (left-- > 0) await op();
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, caller));
}

/** Lets pending callbacks (and GC notifications) run. */
function settle() {
  return new Promise((resolve) => setImmediate(resolve));
}

/** 1. One million operations, half reads and half writes: RSS and heap after a full GC, every tenth. */
async function residency(ops) {
  const mixed = () => (Math.random() < 0.5 ? ops['ours get']() : ops['ours set']());
  const samples = [];
  for (let done = 0; done < TOTAL_OPS; done += SAMPLE_EVERY) {
    await run(mixed, SAMPLE_EVERY);
    await settle();
    global.gc();
    const { rss, heapUsed } = process.memoryUsage();
    samples.push({ ops: done + SAMPLE_EVERY, rss, heap: heapUsed });
  }
  const warm = samples.slice(3);
  const growth = {
    rss: Math.max(...warm.map((s) => s.rss)) - warm[0].rss,
    heap: warm.at(-1).heap - warm[0].heap,
  };
  return { samples, growth };
}

/** 2. JS heap bytes allocated per operation, for each client; `null` if a GC always got in the way. */
async function allocations(ops) {
  const v8 = require('node:v8');
  const { PerformanceObserver } = require('node:perf_hooks');
  let collections = 0;
  const observer = new PerformanceObserver((list) => (collections += list.getEntries().length));
  observer.observe({ entryTypes: ['gc'] });
  const results = [];
  for (const [name, op] of Object.entries(ops)) {
    await run(op, ALLOCATION_OPS); // warm-up: JIT, connection, buffers
    let bytesPerOp = null;
    // A client that allocates more than the young generation holds is counted over fewer operations.
    for (let count = ALLOCATION_OPS; count >= ALLOCATION_OPS / 16 && bytesPerOp === null; count /= 2) {
      global.gc();
      await settle(); // the observer hears of that collection asynchronously
      await settle();
      const seen = collections;
      const before = v8.getHeapStatistics().used_heap_size;
      await run(op, count);
      const after = v8.getHeapStatistics().used_heap_size;
      await settle();
      await settle();
      if (collections === seen) bytesPerOp = Math.round((after - before) / count);
    }
    results.push({ client: name, bytesPerOp });
  }
  observer.disconnect();
  return results;
}
