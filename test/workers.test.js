'use strict';

// Worker threads load and unload the package in every order, in a child
// process whose main thread never loads it (as worker pools do): the process
// survives, and every worker's calls are answered or fail with a code. On the
// memory and Redis backends.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { useRedis } = require('./helpers/fixtures');
const { runProcess } = require('../__test__/servers/child-process');

const HOST = path.join(__dirname, 'helpers', 'worker-host.js');
const redis = useRedis();

/** Runs one scenario of worker-host.js; resolves its parsed RESULT line. */
async function host(scenario, backend) {
  const r = await runProcess(process.execPath, [HOST, scenario, backend, String(redis.server.port)], { timeoutMs: 60000 });
  assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.timedOut, false, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no RESULT line: ${r.stdout}`);
  return JSON.parse(line.slice('RESULT '.length));
}

/** Every call a worker made was answered, with what the calls must give. */
function assertAnswered(worker) {
  assert.equal(worker.error, undefined);
  assert.equal(worker.exitCode, 0);
  const [report] = worker.messages;
  assert.deepEqual(report.outcomes, [
    ['ok', null],
    ['ok', { n: 1 }],
    ['ok', 2],
    ['ok', { a: { n: 1 }, n: 2 }],
  ]); // undefined crosses as null
}

for (const backend of ['memory', 'redis']) {
  describe(`worker threads, ${backend} backend`, () => {
    test('sequential workers, each loading the package after the previous one exited', async () => {
      const { workers } = await host('sequential', backend);
      assert.equal(workers.length, 10);
      workers.forEach(assertAnswered);
    });

    test('a recycled pool of 20 workers, 4 alive at a time', async () => {
      const { workers } = await host('pool', backend);
      assert.equal(workers.length, 20);
      workers.forEach(assertAnswered);
    });

    test('workers terminated with calls in flight; the next worker works', async () => {
      const { workers } = await host('terminate', backend);
      assert.equal(workers.length, 6);
      workers.forEach((worker, i) => {
        if (i % 2 === 1) {
          assertAnswered(worker);
          return;
        }
        assert.equal(worker.exitCode, 1, 'terminated');
        assert.deepEqual(worker.messages, [{ flooding: true }]);
      });
    });
  });
}

test('workers that load only the .node binary, one after another', async () => {
  const { workers } = await host('binary-only', 'memory');
  assert.equal(workers.length, 5);
  for (const worker of workers) assert.deepEqual([worker.exitCode, worker.messages], [0, [{ outcomes: ['ok'] }]]);
});
