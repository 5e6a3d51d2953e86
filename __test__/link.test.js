'use strict';

// The Redis connection on Node's event loop (lib/link.js + src/store/redis/link.rs),
// against real redis-servers: replies paired with their calls through big
// pipelines and reads cut anywhere, scripts Redis forgot, connections the
// server drops, and the handshake every new connection starts with.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { Store } = require('../lib/store');
const { startRedis, testRedis } = require('./servers/redis');
const { connectRedis } = require('./servers/redis-client');

let redis;
let db;

test.before(async () => {
  redis = await testRedis();
  db = connectRedis(redis);
});

test.after(async () => {
  await db.quit();
  await redis.stop();
});

function engineOn(server, session = {}, redisOptions = {}) {
  const options = { redis: { ...server.options, ...redisOptions }, session: { secret: 'k', ...session } };
  return new Store('redis', JSON.stringify(options));
}

function newId(engine) {
  return engine.open(undefined, undefined, undefined, false).id;
}

/**
 * Closes every connection of a normal client but `client`'s own, and waits
 * until `engine` has seen its connection close. A call issued before that
 * goes out on the dead socket and fails: unanswered calls are not sent again,
 * since a second `incr` or `rename` could apply twice.
 */
async function killConnection(client, engine) {
  const killed = await client.command('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
  assert.ok(killed >= 1, `CLIENT KILL closed ${killed} connections`);
  for (let waited = 0; engine.socket.socket && waited < 2000; waited += 5) await sleep(5);
  assert.equal(engine.socket.socket, null, 'the engine did not notice its connection close');
}

test('a thousand calls issued together come back paired with their own calls', async (t) => {
  const engine = engineOn(redis, { prefix: `link-pairs-${process.pid}` });
  t.after(() => engine.close());
  const ids = Array.from({ length: 200 }, () => newId(engine));
  // One turn of the event loop: one batch, one pipeline.
  const written = await Promise.all(ids.map((id, i) => engine.write(id, ['n', String(i)], [], true)));
  assert.ok(written.every((done) => done === true));

  const picks = Array.from({ length: 1000 }, (_, k) => (k * 7919) % ids.length);
  const read = await Promise.all(picks.map((i) => engine.get(ids[i], 'n')));
  assert.deepEqual(read, picks.map(String));
});

test('replies larger than the read buffer, cut across many reads, arrive whole', async (t) => {
  const engine = engineOn(redis, { prefix: `link-big-${process.pid}` });
  t.after(() => engine.close());
  const big = (fill) => JSON.stringify(fill.repeat(300 * 1024)); // ~300 KiB each, over 64 KiB reads
  const crlfs = JSON.stringify('\r\n'.repeat(100 * 1024)); // RESP's own line ends, inside a value
  const a = newId(engine);
  const b = newId(engine);
  await Promise.all([engine.write(a, ['x', big('a'), 'y', crlfs], [], true), engine.write(b, ['x', big('b')], [], true)]);

  const [getAllA, getB, small] = await Promise.all([engine.getAll(a), engine.get(b, 'x'), engine.get(b, 'missing')]);
  assert.deepEqual(Object.fromEntries(pairs(getAllA)), { x: big('a'), y: crlfs });
  assert.equal(getB, big('b'));
  assert.equal(small, null);
});

test('a pipeline far bigger than the socket takes at once goes out whole and in order', async (t) => {
  const engine = engineOn(redis, { prefix: `link-flood-${process.pid}` });
  t.after(() => engine.close());
  const ids = Array.from({ length: 24 }, () => newId(engine));
  const value = (i) => JSON.stringify(String(i).repeat(400 * 1024)); // 24 x 400+ KiB in one batch
  const written = await Promise.all(ids.map((id, i) => engine.write(id, ['v', value(i)], [], true)));
  assert.ok(written.every((done) => done === true));
  const read = await Promise.all(ids.map((id) => engine.get(id, 'v')));
  read.forEach((got, i) => {
    assert.ok(got === value(i), `session ${i} holds another value`);
  });
});

test('a Redis that forgot the scripts (SCRIPT FLUSH) gets them again, and the write happens once', async (t) => {
  const engine = engineOn(redis, { prefix: `link-noscript-${process.pid}` });
  t.after(() => engine.close());
  const id = newId(engine);
  assert.equal(await engine.write(id, ['a', '1'], [], true), true);
  await db.command('SCRIPT', 'FLUSH');
  const [written, counted] = await Promise.all([engine.write(id, ['b', '2'], [], false), engine.incr(id, 'n', 5, false)]);
  assert.equal(written, true);
  assert.equal(counted, 5);
  assert.deepEqual(await db.sessionData(`link-noscript-${process.pid}:${id}`), { a: '1', b: '2', n: '5' });
});

test('a new connection loads the scripts first: a write and a destroy in one batch run in order', async (t) => {
  const engine = engineOn(redis, { prefix: `link-order-${process.pid}` });
  t.after(() => engine.close());
  const warm = newId(engine);
  await engine.write(warm, ['a', '1'], [], true); // connected
  await db.command('SCRIPT', 'FLUSH'); // as after a Redis restart
  await killConnection(db, engine);
  const id = newId(engine);
  const [written, destroyed] = await Promise.all([engine.write(id, ['a', '1'], [], true), engine.destroy(id)]);
  assert.equal(written, true);
  assert.equal(destroyed, 1, 'it existed when destroyed');
  assert.equal(await db.exists(`link-order-${process.pid}:${id}`), false, 'the destroyed session came back');
});

test('a connection the server drops while idle is reopened by the next call, with no error', async (t) => {
  const engine = engineOn(redis, { prefix: `link-drop-${process.pid}` });
  t.after(() => engine.close());
  const id = newId(engine);
  await engine.write(id, ['a', '"kept"'], [], true);
  await killConnection(db, engine);
  assert.equal(await engine.get(id, 'a'), '"kept"');
});

test('every new connection authenticates and selects session.dbIndex first', async (t) => {
  const server = await startRedis({ password: 'link secret' });
  const raw = connectRedis(server, 3);
  t.after(async () => {
    await raw.quit();
    await server.stop();
  });
  const engine = engineOn(server, { prefix: 'link-db', dbIndex: 3 });
  t.after(() => engine.close());
  const id = newId(engine);
  await engine.write(id, ['a', '1'], [], true);
  await killConnection(raw, engine);
  await engine.write(id, ['b', '2'], [], false); // on a new connection
  assert.deepEqual(await raw.sessionData(`link-db:${id}`), { a: '1', b: '2' });
});

for (const [garbage, reply] of [
  ['garbage', '?not RESP\r\n'],
  ['a bulk length past any Redis (and past usize)', '$18446744073709551591\r\n'],
])
  test(`a server that answers ${garbage} fails the calls with ERR_SESSION_STORE, and the next call reconnects`, async (t) => {
    const sockets = new Set();
    let connections = 0;
    const server = net.createServer((socket) => {
      connections++;
      sockets.add(socket);
      socket.on('data', () => socket.write(reply));
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const engine = engineOn({ options: { host: '127.0.0.1', port: server.address().port } }, {}, { commandTimeout: 2000 });
    t.after(() => engine.close());
    const id = newId(engine);

    const results = await Promise.allSettled([engine.get(id, 'a'), engine.touch(id)]);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.equal(result.reason.code, 'ERR_SESSION_STORE');
      assert.match(result.reason.message, /not RESP2/);
    }
    await assert.rejects(engine.get(id, 'a'), { code: 'ERR_SESSION_STORE' });
    assert.equal(connections, 2, 'one connection per batch: each was dropped after its garbage');
    // ...and dropped for real: the server sees them close.
    for (let waited = 0; sockets.size > 0 && waited < 2000; waited += 20) await sleep(20);
    assert.equal(sockets.size, 0, 'connections left open');
  });

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

test('close() waits for the calls in flight, and a second close() resolves too', async () => {
  const engine = engineOn(redis, { prefix: `link-close-${process.pid}` });
  const id = newId(engine);
  const write = engine.write(id, ['a', '1'], [], true);
  const first = engine.close();
  const second = engine.close();
  assert.equal(await write, true, 'a call issued before close() still runs');
  await Promise.all([first, second]);
  await assert.rejects(engine.get(id, 'a'), { code: 'ERR_SESSION_CLOSED' });
  assert.equal(await engine.close(), undefined);
});

/** `[k, v, k, v]` as `[[k, v], ...]`. */
function pairs(flat) {
  const out = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}
