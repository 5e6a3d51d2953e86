'use strict';

// The clients every engine-level benchmark compares: a session of ours, and
// ioredis and node-redis issuing the same Redis commands as a session call
// (HGET; MULTI HSET EXPIRE EXEC).

const altSession = require('..');
const IORedis = require('ioredis');
const nodeRedis = require('redis');

const TTI = 300;

/** A session of ours, opened the way a request opens it. */
function openSession(mw) {
  return new Promise((resolve, reject) => {
    const req = { headers: {}, secure: false };
    const res = { getHeader() {}, setHeader() {}, headersSent: false };
    mw(req, res, (err) => (err ? reject(err) : resolve(req.session)));
  });
}

/**
 * Connects all three to the Redis on `redisPort`, and ours and ioredis to
 * the Redis Cluster of `clusterNodes` when given. `ops` maps a name (`ours
 * get`, `ioredis set`, `ours-cluster get`...) to a function running one operation.
 */
async function clients(redisPort, clusterNodes) {
  const ours = altSession({ redis: { port: redisPort }, session: { secret: 'bench', tti: TTI } });
  const session = await openSession(ours);
  await session.set('n', 1);
  const key = `session:${session.id}`;

  const io = new IORedis({ port: redisPort, host: '127.0.0.1' });
  const nr = nodeRedis.createClient({ socket: { port: redisPort, host: '127.0.0.1' } });
  await nr.connect();

  const value = JSON.stringify(1);
  const cluster = clusterNodes && (await clusterClients(clusterNodes));
  return {
    close: async () => {
      await ours.close();
      io.disconnect();
      await nr.quit();
      if (cluster) await cluster.close();
    },
    ops: {
      ...(cluster ? cluster.ops : {}),
      'ours get': () => session.get('n'),
      'ioredis get': () => io.hget(key, 'n'),
      'redis get': () => nr.hGet(key, 'n'),
      'ours set': () => session.set('n', 1),
      'ioredis set': () => io.multi().hset(key, 'n', value).expire(key, TTI).exec(),
      'redis set': () => nr.multi().hSet(key, 'n', value).expire(key, TTI).exec(),
    },
    key,
  };
}

/** Ours and ioredis.Cluster on the same cluster, with the same commands. */
async function clusterClients(nodes) {
  const ours = altSession({ redis: { cluster: { nodes } }, session: { secret: 'bench', tti: TTI } });
  const session = await openSession(ours);
  await session.set('n', 1);
  const key = `session:${session.id}`;
  const io = new IORedis.Cluster(nodes);
  await new Promise((resolve, reject) => {
    io.once('ready', resolve);
    io.once('error', reject);
  });
  const value = JSON.stringify(1);
  return {
    close: async () => {
      await ours.close();
      io.disconnect();
    },
    ops: {
      'ours-cluster get': () => session.get('n'),
      'ioredis-cluster get': () => io.hget(key, 'n'),
      'ours-cluster set': () => session.set('n', 1),
      'ioredis-cluster set': () => io.multi().hset(key, 'n', value).expire(key, TTI).exec(),
    },
  };
}

module.exports = { clients };
