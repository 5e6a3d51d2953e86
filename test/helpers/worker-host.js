'use strict';

// The main thread of a child process that loads alt-session only in worker
// threads, the way worker pools (piscina, jest, vitest, tinypool) do: it never
// requires the package itself. Run by test/workers.test.js:
//
//   node test/helpers/worker-host.js <scenario> <backend: memory|redis> [redisPort]
//
// Each worker requires the package (or only its binary), drives the
// middleware by hand, reports every call's outcome to this thread and exits
// (or is terminated). Prints one line `RESULT <json>` and exits 0 when it
// ran to its end; a crash of the process shows as a signal to the test.

const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const PACKAGE = path.join(__dirname, '..', '..');

if (isMainThread) {
  main().then(
    (result) => console.log(`RESULT ${JSON.stringify(result)}`),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    }
  );
} else {
  work(workerData).catch((err) => parentPort.postMessage({ fatal: String(err && err.stack) }));
}

async function main() {
  const [scenario, backend, redisPort] = process.argv.slice(2);
  const options = { backend, redisPort: Number(redisPort) };
  const scenarios = {
    // One worker after another; each exits before the next loads the package.
    sequential: () => inTurn(10, () => runWorker({ ...options, task: 'calls' })),
    // Only the .node binary, as a loader probing the platform would.
    'binary-only': () => inTurn(5, () => runWorker({ ...options, task: 'binary' })),
    // A recycled pool: 20 workers, 4 alive at a time, each replaced as it exits.
    pool: () => pooled(20, 4, () => runWorker({ ...options, task: 'calls' })),
    // Workers terminated with calls in flight, each followed by one that must work.
    terminate: () =>
      inTurn(6, (i) => (i % 2 === 0 ? runWorker({ ...options, task: 'flood' }, { terminateAfterMs: 5 }) : runWorker({ ...options, task: 'calls' }))),
  };
  const workers = await scenarios[scenario]();
  return { scenario, backend, workers };
}

async function inTurn(count, start) {
  const results = [];
  for (let i = 0; i < count; i++) results.push(await start(i));
  return results;
}

async function pooled(count, width, start) {
  const results = [];
  let started = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (started < count) {
        started++;
        results.push(await start());
      }
    })
  );
  return results;
}

/** Starts one worker; resolves what it reported and how it ended. */
function runWorker(data, { terminateAfterMs } = {}) {
  return new Promise((resolve) => {
    const worker = new Worker(__filename, { workerData: { ...data, packagePath: PACKAGE } });
    const report = { messages: [] };
    worker.on('message', (message) => {
      report.messages.push(message);
      if (message.flooding && terminateAfterMs !== undefined) {
        setTimeout(() => worker.terminate(), terminateAfterMs);
      }
    });
    worker.on('error', (err) => (report.error = String(err && err.stack)));
    worker.on('exit', (code) => resolve({ ...report, exitCode: code }));
  });
}

// ---------------------------------------------------------------------------
// Inside a worker

async function work({ task, backend, redisPort, packagePath }) {
  if (task === 'binary') {
    const binding = require(path.join(packagePath, 'binding.js'));
    parentPort.postMessage({ outcomes: [typeof binding.signCookie === 'function' ? 'ok' : 'no binding'] });
    return;
  }
  const altSession = require(packagePath);
  const options = { redis: { port: redisPort }, session: { secret: 'workers' } };
  const mw = backend === 'redis' ? altSession(options) : altSession.mock(options);
  const session = await openSession(mw);
  if (task === 'flood') {
    // Calls in flight when the thread is terminated: nothing waits for them.
    for (let i = 0; i < 2000; i++) session.set(`k${i % 50}`, i).catch(() => {});
    parentPort.postMessage({ flooding: true });
    await new Promise((resolve) => setTimeout(resolve, 10000));
    return;
  }
  const outcomes = [];
  const record = (promise) =>
    promise.then(
      (value) => outcomes.push(['ok', value]),
      (err) => outcomes.push(['error', err.code])
    );
  await record(session.set('a', { n: 1 }));
  await record(session.get('a'));
  await record(session.incr('n', 2));
  await record(session.getAll());
  await mw.close();
  parentPort.postMessage({ outcomes });
}

/** The middleware driven by hand, as a job might: resolves `req.session`. */
function openSession(mw) {
  const req = { headers: {}, socket: {} };
  const headers = {};
  const res = { getHeader: (n) => headers[n], setHeader: (n, v) => (headers[n] = v), headersSent: false };
  return new Promise((resolve, reject) => mw(req, res, (err) => (err ? reject(err) : resolve(req.session))));
}
