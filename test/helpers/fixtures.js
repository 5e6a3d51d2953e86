'use strict';

// Whole-file (or whole-suite) fixtures: each registers its own before/after
// hooks where it is called, at the top of a file or inside a describe.

const { before, after } = require('node:test');
const { testRedis } = require('../../__test__/servers/redis');
const { connectRedis } = require('../../__test__/servers/redis-client');

/**
 * The test Redis and a raw client on its database 0, started before the tests
 * and released after them. Returns getters, set once `before` has run:
 * `server` (`{ host, port, url, options, ... }` from testRedis) and `db` (connectRedis).
 */
function useRedis() {
  let server;
  let db;
  before(async () => {
    server = await testRedis();
    db = connectRedis(server);
  });
  after(async () => {
    if (db) await db.quit();
    if (server) await server.stop();
  });
  return {
    get server() {
      return server;
    },
    get db() {
      return db;
    },
  };
}

/**
 * Records every unhandled rejection from now until the `after` hooks: returns
 * the live array of reasons (tests assert it stays empty). Listening also
 * keeps such a rejection from crashing the file before that assertion.
 */
function recordUnhandledRejections() {
  const reasons = [];
  const record = (reason) => reasons.push(reason);
  process.on('unhandledRejection', record);
  after(() => process.off('unhandledRejection', record));
  return reasons;
}

module.exports = { useRedis, recordUnhandledRejections };
