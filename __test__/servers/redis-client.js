'use strict';

// A promise wrapper on redis@3 (callback API) to look at what the session
// middleware stored: the tests check the data itself, not only the API.

const fs = require('node:fs');
const redis = require('redis');

/** The hash field where the engine records a session's creation time (unix ms). */
const CREATED_FIELD = '\0created';

/** How long a command (or quit) may take before it fails instead of hanging the test. */
const TIMEOUT_MS = 5000;

/**
 * Connects to the test server `{ host, port, password?, tlsCa? }`, on database `db`.
 * Every command rejects after `timeoutMs` without an answer (Redis down, or paused).
 */
function connectRedis({ host, port, password, tlsCa }, db = 0, { timeoutMs = TIMEOUT_MS } = {}) {
  if (Number(port) === 6379 && !process.env.REDIS_URL) {
    throw new Error('refusing to inspect the Redis on port 6379: the tests use their own server');
  }
  const tls = tlsCa ? { ca: fs.readFileSync(tlsCa) } : undefined; // a TLS server of startRedis
  const client = redis.createClient({ host, port, db, password, tls });
  client.on('error', () => {}); // a failing command rejects below; no crash on a reset

  const command = (name, ...args) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis ${name} did not answer within ${timeoutMs} ms`)), timeoutMs);
      client.send_command(name, args.map(String), (err, reply) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(reply);
      });
    });

  /** Every key of the database matching `pattern`, by SCAN. */
  async function keys(pattern = '*') {
    const found = [];
    let cursor = '0';
    do {
      const [next, batch] = await command('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000);
      found.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return found.sort();
  }

  return {
    command,
    keys,
    /** The raw fields of a hash; `{}` when the key does not exist. */
    hgetall: async (key) => (await command('HGETALL', key)) || {},
    /**
     * The application's fields of a session hash, raw: every field but the
     * creation time the engine keeps beside them (`\0created`); `{}` when
     * the key does not exist.
     */
    async sessionData(key) {
      const { [CREATED_FIELD]: created, ...data } = (await command('HGETALL', key)) || {}; // eslint-disable-line no-unused-vars
      return data;
    },
    hset: (key, field, value) => command('HSET', key, field, value),
    ttl: (key) => command('TTL', key),
    expire: (key, seconds) => command('EXPIRE', key, seconds),
    type: (key) => command('TYPE', key),
    exists: async (key) => (await command('EXISTS', key)) === 1,
    /** Every key with its raw content: to prove that something wrote nothing. */
    async snapshot() {
      const snapshot = {};
      for (const key of await keys()) {
        const type = await command('TYPE', key);
        snapshot[key] = type === 'hash' ? await command('HGETALL', key) : type;
      }
      return snapshot;
    },
    /** Closes the connection: QUIT, or dropping it when QUIT gets no answer in time. */
    quit: () =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          client.end(false);
          resolve();
        }, timeoutMs);
        client.quit(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/**
 * Runs `fn(client)` on a connection of its own to `server`, closed afterwards:
 * for a server that is stopped, restarted or frozen between uses.
 */
async function withRedisClient(server, fn) {
  const client = connectRedis(server);
  try {
    return await fn(client);
  } finally {
    await client.quit();
  }
}

/**
 * Whether a replica of the primary `primaryDb` talks to confirms writes (`WAIT` counts it):
 * after a diskless sync, Redis 7 sends a replica the command stream only from its first
 * ACK, up to a second after both sides report the link up and the replica online. Writes
 * a probe key.
 */
async function replicaOnline(primaryDb) {
  await primaryDb.command('SET', 'replica-probe', '1');
  return (await primaryDb.command('WAIT', '1', '100')) >= 1;
}

module.exports = { connectRedis, withRedisClient, replicaOnline, CREATED_FIELD };
