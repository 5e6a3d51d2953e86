'use strict';

// Each Lua script (src/store/redis/scripts/*.lua) against its contract, on a
// real Redis: what goes in (through the engine call that runs it), what comes
// out, and what the hash, its fields and its TTL hold afterwards, read with a
// plain client.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Store } = require('../lib/store');
const { testRedis } = require('./servers/redis');
const { connectRedis, CREATED_FIELD } = require('./servers/redis-client');

const TTI = 300;
const PREFIX = `scripts-${process.pid}`;
let redis;
let db;
let engine;

test.before(async () => {
  redis = await testRedis();
  db = connectRedis(redis);
  engine = new Store('redis', JSON.stringify({ redis: { url: redis.url }, session: { tti: TTI, prefix: PREFIX, secret: 'k', maxFields: 3 } }));
});

test.after(async () => {
  await engine.close();
  await db.quit();
  await redis.stop();
});

const newId = (bound = false) => (bound ? engine.openFresh(true, false, undefined, false) : engine.open(undefined, undefined, undefined, false)).id;
const key = (id) => `${PREFIX}:${id}`;
const pttl = (k) => db.command('PTTL', k);
/** The TTL is the idle timeout, give or take the test's own time. */
const assertIdleTtl = async (k) => {
  const ms = await pttl(k);
  assert.ok(ms > (TTI - 5) * 1000 && ms <= TTI * 1000, `PTTL ${ms}`);
};
const nearNow = (ms) => Math.abs(Number(ms) - Date.now()) < 5000;

test('start.lua: the hash holds only its creation time, expiring after tti', async () => {
  const id = newId();
  assert.equal(await engine.start(id), true);
  const fields = await db.hgetall(key(id));
  assert.deepEqual(Object.keys(fields), [CREATED_FIELD]);
  assert.ok(nearNow(fields[CREATED_FIELD]));
  await assertIdleTtl(key(id));
});

test('write.lua: sets and deletes at once; strict to a missing session (false, nothing made); capped by maxFields (nothing written)', async () => {
  const id = newId();
  assert.equal(await engine.write(id, ['a', '1'], [], false), false, 'strict write to a session that does not exist');
  assert.equal(await db.exists(key(id)), false);
  assert.equal(await engine.write(id, ['a', '1', 'b', '2'], [], true), true);
  assert.equal(await engine.write(id, ['c', '3'], ['a'], false), true);
  assert.deepEqual(await db.sessionData(key(id)), { b: '2', c: '3' });
  await assertIdleTtl(key(id));
  await assert.rejects(engine.write(id, ['d', '4', 'e', '5'], [], false), { code: 'ERR_SESSION_TOO_LARGE' });
  assert.deepEqual(await db.sessionData(key(id)), { b: '2', c: '3' }, 'nothing written');
});

test("load.lua: seen.lua's answer, then every field but the store's own; the idle TTL refreshed; false for a missing session", async () => {
  const id = newId();
  assert.equal(await engine.load(id), false);
  assert.equal(await db.exists(key(id)), false, 'nothing made');
  assert.equal(await engine.write(id, ['a', '1', 'b', '"x"'], [], true), true);
  await db.command('PEXPIRE', key(id), 2000);
  const loaded = await engine.load(id);
  assert.deepEqual(loaded.slice(0, 3), [null, null, null], 'not signed in, no persistent cookie');
  assert.deepEqual(
    Object.fromEntries([
      [loaded[3], loaded[4]],
      [loaded[5], loaded[6]],
    ]),
    { a: '1', b: '"x"' }
  );
  assert.equal(loaded.length, 7, 'the creation time is not a field of the app');
  await assertIdleTtl(key(id));
});

test('incr.lua: the new value; strict as write.lua; the field cap', async () => {
  const id = newId();
  assert.equal(await engine.incr(id, 'n', 2, false), false);
  assert.equal(await engine.incr(id, 'n', 2, true), 2);
  assert.equal(await engine.incr(id, 'n', -5, false), -3);
  assert.deepEqual(await db.sessionData(key(id)), { n: '-3' });
  await assertIdleTtl(key(id));
});

test('touch.lua and rename.lua: a move leaves the data under the new key, the marker beside the old one', async () => {
  const [id, to] = [newId(), newId()];
  await engine.write(id, ['a', '1'], [], true);
  await db.command('PEXPIRE', key(id), 1000);
  assert.equal(await engine.touch(id), true);
  await assertIdleTtl(key(id));
  assert.equal(await engine.rename(id, to), true);
  assert.equal(await db.exists(key(id)), false);
  assert.deepEqual(await db.sessionData(key(to)), { a: '1' });
  await assertIdleTtl(key(to));
  const marker = await pttl(`${key(id)}:moved`);
  assert.ok(marker > 0 && marker <= 10000, `marker PTTL ${marker}`);
  await assert.rejects(engine.rename(id, newId()), { code: 'ERR_SESSION_CONFLICT' });
});

test('bind.lua, seen.lua, extend.lua: the user, its times and its lease in the hash; the TTL within the lease', async () => {
  const id = newId(true);
  assert.equal(await engine.bind(id, 'ann', '{}'), false, 'a session that does not exist is not bound');
  await engine.start(id);
  assert.equal(await engine.bind(id, 'ann', '{"d":1}'), true);
  const bound = await db.hgetall(key(id));
  assert.equal(bound['\0user'], 'ann');
  assert.equal(bound['\0meta'], '{"d":1}');
  for (const field of ['\0login', '\0seen']) assert.ok(nearNow(bound[field]), field);
  const lease = Number(bound['\0until']);
  assert.ok(lease > Date.now() + 3600 * 1000, 'a lease of at least two hours');
  assert.deepEqual(await engine.seen(id), ['ann', null, null], 'no renewal early in the lease; a browser-session cookie');
  await db.command('HSET', key(id), '\0until', Date.now() + 60000);
  assert.deepEqual(await engine.seen(id), ['ann', 'renew', null], 'renew in the second half of the lease');
  const ms = await pttl(key(id));
  assert.ok(ms <= 60000, `the TTL stays within the lease: ${ms}`);
  assert.equal(await engine.extend(id), true);
  assert.ok(Number((await db.hgetall(key(id)))['\0until']) > Date.now() + 3600 * 1000, 'the lease moved on');
});

test('bind.lua with remember, seen.lua: a persistent cookie recorded, sent again only when the session would outlive it; a plain bind drops the record', async () => {
  const id = newId(true);
  await engine.start(id);
  assert.equal(await engine.bind(id, 'ann', '{}', true), true);
  const recorded = Number((await db.hgetall(key(id)))['\0cookie']);
  assert.ok(Math.abs(recorded - (Date.now() + 2 * TTI * 1000)) < 5000, 'the cookie sent with a Max-Age of twice tti');
  assert.deepEqual(await engine.seen(id), ['ann', null, '0'], 'remembered; the cookie outlives the session');
  await db.command('HSET', key(id), '\0cookie', Date.now() + 1000);
  const [, , renewal] = await engine.seen(id);
  assert.equal(Number(renewal), 2 * TTI * 1000, 'sent again, for twice tti');
  assert.ok(Number((await db.hgetall(key(id)))['\0cookie']) > Date.now() + TTI * 1000, 'and recorded');
  assert.equal(await engine.bind(id, 'ann', undefined, false), true);
  assert.equal((await db.hgetall(key(id)))['\0cookie'], undefined);
  assert.deepEqual(await engine.seen(id), ['ann', null, null]);
});

test('a write, an incr or a bind to a session a cluster move has claimed is refused with ERR_SESSION_CONFLICT, and writes nothing; a lapsed claim is no claim', async () => {
  const id = newId();
  await engine.write(id, ['a', '1'], [], true);
  await db.command('HSET', key(id), '\0moving', `${Date.now() + 60000}:${PREFIX}:other`);
  await assert.rejects(engine.write(id, ['a', '2'], [], false), { code: 'ERR_SESSION_CONFLICT' });
  await assert.rejects(engine.incr(id, 'n', 1, false), { code: 'ERR_SESSION_CONFLICT' });
  await assert.rejects(engine.bind(id, 'ann'), { code: 'ERR_SESSION_CONFLICT' });
  assert.equal((await db.hgetall(key(id))).a, '1');
  await db.command('HSET', key(id), '\0moving', `${Date.now() - 1}:${PREFIX}:other`);
  assert.equal(await engine.write(id, ['a', '3'], [], false), true);
  assert.equal((await db.hgetall(key(id))).a, '3');
});

test('index_add.lua, index_list.lua, index_overflow.lua: entries scored by lease, the index expiring with its last lease, the cap', async () => {
  const user = 'zed';
  const index = `${PREFIX}:user:${user}`;
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const id = newId(true);
    await engine.start(id);
    assert.equal(await engine.indexAdd(user, id, false), 1);
    ids.push(id);
  }
  const scores = await db.command('ZRANGE', index, 0, -1, 'WITHSCORES');
  assert.equal(scores.length, 6);
  assert.ok(Number(scores[1]) > Date.now() + 3600 * 1000, 'scored by the lease end');
  const expiresAt = Date.now() + (await pttl(index));
  assert.ok(Math.abs(expiresAt - Number(scores[5])) < 5000, 'the index expires with its last lease');
  assert.deepEqual(new Set(await engine.indexList(user)), new Set(ids));
  assert.equal(await engine.indexAdd(user, newId(true), true), 0, 'a renewal puts back no entry');
  assert.deepEqual(await engine.indexOverflow(user), [], 'under the cap (100)');
  await db.command('ZADD', index, Date.now() - 1000, 'stale-entry');
  await engine.indexList(user);
  assert.equal(await db.command('ZSCORE', index, 'stale-entry'), null, 'an entry whose lease is over is pruned');
});
