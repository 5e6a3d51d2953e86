'use strict';

// A Sentinel group on loopback for the failover tests: a primary, a replica
// of it, and one sentinel monitoring them (quorum 1, so it alone decides a
// failover), each a redis-server of its own on a free port.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setTimeout: delay } = require('node:timers/promises');
const { startRedis, freePort } = require('./redis');
const { connectRedis } = require('./redis-client');

const NAME = 'sessions';
/** How long the sentinel waits before it thinks a silent primary is down. */
const DOWN_AFTER_MS = 1000;

/** Polls `check()` until it returns something truthy, for at most `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`sentinel group: ${what} did not happen within ${ms} ms`);
    await delay(50);
  }
}

/**
 * Starts the group and waits until the sentinel knows the replica. Returns
 * `{ name, sentinel: { host, port }, nodes, primaryPort(), stop() }`; `nodes`
 * maps a port to its server (`stop`, `pid`, ...). With `certificates`
 * (helpers/certificates.js), every one of them serves TLS only, replication
 * and the sentinel's own connections included.
 */
async function startSentinelGroup({ certificates } = {}) {
  const tls = certificates && { cert: certificates.serverCert, key: certificates.serverKey, ca: certificates.ca };
  const tlsReplication = tls ? ['--tls-replication', 'yes'] : [];
  const primary = await startRedis({ tls, args: tlsReplication });
  const replica = await startRedis({ tls, args: [...tlsReplication, '--replicaof', '127.0.0.1', String(primary.port)] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-sentinel-'));
  const port = await freePort();
  const config = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(config, [
    `port ${port}`,
    'bind 127.0.0.1',
    `sentinel monitor ${NAME} 127.0.0.1 ${primary.port} 1`,
    `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
    `sentinel failover-timeout ${NAME} 5000`,
    '',
  ].join('\n'));
  const sentinel = await startRedis({ configFile: config, args: ['--sentinel', ...tlsReplication], port, tls });
  const admin = connectRedis(sentinel);
  const group = {
    name: NAME,
    downAfterMs: DOWN_AFTER_MS,
    sentinel: { host: '127.0.0.1', port },
    admin,
    nodes: new Map([[primary.port, primary], [replica.port, replica]]),
    /** The primary's port, as the sentinel says now. */
    async primaryPort() {
      const [, reported] = await admin.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME);
      return Number(reported);
    },
    async stop() {
      await admin.quit();
      await Promise.all([sentinel.stop(), primary.stop(), replica.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  // The replica is in sync, and the sentinel has seen it: a failover can pick it.
  await until(async () => {
    const replicas = await admin.command('SENTINEL', 'REPLICAS', NAME);
    return replicas.some((fields) => {
      const info = Object.fromEntries(fields.map((v, i) => (i % 2 ? null : [v, fields[i + 1]])).filter(Boolean));
      return Number(info.port) === replica.port && info['master-link-status'] === 'ok' && !/down/.test(info.flags);
    });
  }, 15000, 'the sentinel seeing the replica');
  return group;
}

module.exports = { startSentinelGroup, until };
