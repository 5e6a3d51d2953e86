'use strict';

// A Sentinel group on loopback for the failover tests: a primary, a replica
// of it, and three sentinels monitoring them (quorum 2, as in production:
// a failover needs two of them to agree), each a redis-server of its own on
// a free port.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setTimeout: delay } = require('node:timers/promises');
const { startRedis, freePort } = require('./redis');
const { connectRedis } = require('./redis-client');

const NAME = 'sessions';
/** How long a sentinel waits before it thinks a silent primary is down. */
const DOWN_AFTER_MS = 1000;
const SENTINELS = 3;
const QUORUM = 2;

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
 * Starts the group and waits until every sentinel knows the replica and the
 * other sentinels. Returns `{ name, sentinel: { host, port }, sentinels:
 * [{ host, port }], admin, nodes, primaryPort(), stop() }`: `sentinel` is
 * the first sentinel (`admin` a client on it), `nodes` maps a port to its
 * server (`stop`, `pid`, ...). With `certificates` (servers/certificates.js),
 * every one of them serves TLS only, replication and the sentinels' own
 * connections included.
 */
async function startSentinelGroup({ certificates } = {}) {
  const tls = certificates && { cert: certificates.serverCert, key: certificates.serverKey, ca: certificates.ca };
  const tlsReplication = tls ? ['--tls-replication', 'yes'] : [];
  const primary = await startRedis({ tls, args: tlsReplication });
  const replica = await startRedis({ tls, args: [...tlsReplication, '--replicaof', '127.0.0.1', String(primary.port)] });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-sentinel-'));
  const sentinels = [];
  for (let i = 0; i < SENTINELS; i++) {
    const port = await freePort();
    const config = path.join(dir, `sentinel-${i}.conf`);
    fs.writeFileSync(
      config,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `sentinel monitor ${NAME} 127.0.0.1 ${primary.port} ${QUORUM}`,
        `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${NAME} 5000`,
        '',
      ].join('\n')
    );
    const server = await startRedis({ configFile: config, args: ['--sentinel', ...tlsReplication], port, tls });
    sentinels.push({ server, admin: connectRedis(server), address: { host: '127.0.0.1', port } });
  }
  const admin = sentinels[0].admin;
  const group = {
    name: NAME,
    downAfterMs: DOWN_AFTER_MS,
    sentinel: sentinels[0].address,
    sentinels: sentinels.map((s) => s.address),
    admin,
    nodes: new Map([
      [primary.port, primary],
      [replica.port, replica],
    ]),
    /** The primary's port, as the first sentinel says now. */
    async primaryPort() {
      const [, reported] = await admin.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME);
      return Number(reported);
    },
    async stop() {
      await Promise.all(sentinels.map((s) => s.admin.quit()));
      await Promise.all([...sentinels.map((s) => s.server.stop()), primary.stop(), replica.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  /**
   * Waits until the group could fail over again: every sentinel names the
   * same primary, sees the other sentinels and a replica in sync with it
   * (after a failover, the old primary has come back as that replica).
   */
  group.healthy = () =>
    until(
      async () => {
        const named = new Set();
        for (const { admin: sentinel } of sentinels) {
          const [, port] = await sentinel.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME);
          named.add(Number(port));
          const replicas = (await sentinel.command('SENTINEL', 'REPLICAS', NAME)).map(fieldsOf);
          const ready = replicas.some((info) => info['master-link-status'] === 'ok' && !/down|disconnected/.test(info.flags));
          const peers = await sentinel.command('SENTINEL', 'SENTINELS', NAME);
          if (!ready || peers.length < SENTINELS - 1) return false;
        }
        if (named.size !== 1) return false;
        const [port] = named;
        const info = await primaryInfo(port, certificates);
        return /connected_slaves:1/.test(info) && /slave0:.*state=online/.test(info);
      },
      30000,
      'the group being ready for a failover'
    );
  await group.healthy();
  return group;
}

/** `INFO replication` of the server on `port`. */
async function primaryInfo(port, certificates) {
  const client = connectRedis({ host: '127.0.0.1', port, tlsCa: certificates && certificates.ca });
  try {
    return await client.command('INFO', 'replication');
  } finally {
    await client.quit();
  }
}

/** A `SENTINEL REPLICAS` entry (`[name, value, ...]`) as an object. */
function fieldsOf(flat) {
  const info = {};
  for (let i = 0; i < flat.length; i += 2) info[flat[i]] = flat[i + 1];
  return info;
}

module.exports = { startSentinelGroup, until };
