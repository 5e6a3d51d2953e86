'use strict';

// A Redis Cluster on loopback for the tests: 3 primaries and 3 replicas,
// each a redis-server of its own (`--cluster-enabled yes`), joined with
// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`.

const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { setTimeout: delay } = require('node:timers/promises');
const { startRedis, freePort } = require('./redis');
const { connectRedis } = require('./redis-client');
const { until } = require('./sentinel');

const run = promisify(execFile);
/** How long a silent primary takes to be failed over (`cluster-node-timeout`). */
const NODE_TIMEOUT_MS = 2000;

/** The hash slot of a key (CRC16 of the key, as Redis Cluster computes it, no hash tags here). */
function slotOf(key) {
  let crc = 0;
  for (const byte of Buffer.from(key)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/** `CLUSTER NODES` as objects: `{ id, port, primary, slots: [[from, to], ...], failed }`. */
function parseNodes(text) {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, primaryId, , , , link, ...slots] = line.split(' ');
      return {
        id,
        port: Number(address.split(':')[1].split('@')[0]),
        primary: flags.includes('master'),
        primaryId: primaryId === '-' ? null : primaryId,
        failed: flags.includes('fail') || link !== 'connected',
        slots: slots
          .filter((s) => /^\d/.test(s))
          .map((s) => s.split('-').map(Number))
          .map(([a, b = a]) => [a, b]),
      };
    });
}

/**
 * Starts the cluster and waits until every node says it is ok. Returns
 * `{ nodes: [{ host, port }], servers: Map port -> server, admin(port),
 * topology(), stop() }`. With `certificates` (servers/certificates.js)
 * every node serves TLS only, the cluster bus and replication included.
 */
async function startCluster({ certificates } = {}) {
  const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(NODE_TIMEOUT_MS)];
  const tls = certificates && { cert: certificates.serverCert, key: certificates.serverKey, ca: certificates.ca };
  if (tls) args.push('--tls-cluster', 'yes', '--tls-replication', 'yes');
  // The cluster bus on a port of its own: port + 10000, its default, can run past 65535.
  const servers = await Promise.all(Array.from({ length: 6 }, async () => startRedis({ args: [...args, '--cluster-port', String(await freePort())], tls })));
  const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
  const tlsArgs = tls ? ['--tls', '--cacert', tls.ca] : [];
  try {
    await run('redis-cli', [...tlsArgs, '--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30000 });
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw new Error(`redis-cli --cluster create failed: ${err.message}\n${err.stdout || ''}${err.stderr || ''}`);
  }
  const clients = new Map(servers.map((s) => [s.port, connectRedis(s)]));
  const cluster = {
    nodeTimeoutMs: NODE_TIMEOUT_MS,
    nodes: servers.map((s) => ({ host: '127.0.0.1', port: s.port })),
    servers: new Map(servers.map((s) => [s.port, s])),
    /** A raw client on one node (redis@3, no cluster routing). */
    admin: (port) => clients.get(port),
    /** The cluster as a live node sees it. */
    async topology() {
      for (const [port, client] of clients) {
        if (!cluster.servers.get(port).pid) continue;
        try {
          return parseNodes(await client.command('CLUSTER', 'NODES'));
        } catch {
          // try the next node
        }
      }
      throw new Error('no cluster node answered');
    },
    /** The primary serving `slot` now. */
    async primaryOf(slot) {
      const nodes = await cluster.topology();
      return nodes.find((n) => n.primary && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    },
    /**
     * Moves `slot` from the primary `source` to the primary `target` (nodes of
     * `topology()`) the way `redis-cli --cluster reshard` does: IMPORTING,
     * MIGRATING, each key MIGRATEd, then NODE on every primary.
     */
    async moveSlot(slot, source, target) {
      const src = clients.get(source.port);
      await clients.get(target.port).command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id);
      await src.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target.id);
      await delay(100);
      for (const key of await src.command('CLUSTER', 'GETKEYSINSLOT', slot, 100)) {
        await src.command('MIGRATE', '127.0.0.1', target.port, key, 0, 5000);
      }
      await delay(100);
      for (const node of await cluster.topology()) {
        if (node.primary) await clients.get(node.port).command('CLUSTER', 'SETSLOT', slot, 'NODE', target.id);
      }
    },
    async stop() {
      await Promise.all([...clients.values()].map((c) => c.quit()));
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
  await until(
    async () => {
      for (const client of clients.values()) {
        if (!/cluster_state:ok/.test(await client.command('CLUSTER', 'INFO'))) return false;
      }
      const nodes = await cluster.topology();
      return nodes.filter((n) => n.primary).length === 3 && nodes.filter((n) => !n.primary && !n.failed).length === 3;
    },
    20000,
    'the cluster being ok on every node'
  );
  return cluster;
}

module.exports = { startCluster, parseNodes, slotOf };
