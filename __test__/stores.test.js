'use strict';

// Every store must behave identically: the same sequence of engine calls
// gives the same results in memory, on one Redis, under Sentinel and on a
// Redis Cluster (mock() is only useful if it is faithful, and a deployment
// must not change what the app sees), including idle expiry. One suite, run
// on each.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Store } = require('../lib/store');
const { testRedis } = require('./servers/redis');
const { startSentinelGroup } = require('./servers/sentinel');
const { startCluster } = require('./servers/cluster');

let redis;
let group;
let cluster;
const engines = {};

test.before(async () => {
  [redis, group, cluster] = await Promise.all([testRedis(), startSentinelGroup(), startCluster()]);
  const session = (prefix) => ({ tti: 1, prefix, secret: 'k' });
  const on = (store, options, prefix) => new Store(store, JSON.stringify({ ...options, session: session(prefix) }));
  engines.memory = on('memory', {}, 'stores');
  engines.redis = on('redis', { redis: { url: redis.url } }, `stores-${process.pid}`);
  engines.sentinel = on('redis', { redis: { sentinel: { name: group.name, nodes: group.sentinels } } }, `stores-${process.pid}`);
  engines.cluster = on('redis', { redis: { cluster: { nodes: cluster.nodes.slice(0, 2) } } }, `stores-${process.pid}`);
});

test.after(async () => {
  await Promise.all(Object.values(engines).map((e) => e.close()));
  await Promise.all([redis.stop(), group.stop(), cluster.stop()]);
});

function newId(engine) {
  return engine.open(undefined, undefined, undefined, false).id;
}

/** A script of engine calls, recording every result or error code. */
async function script(engine) {
  const id = newId(engine);
  const log = [];
  const step = async (name, call) => {
    try {
      log.push([name, await call()]);
    } catch (err) {
      log.push([name, 'error', err.code]);
    }
  };
  await step('get missing', () => engine.get(id, 'a'));
  await step('getAll missing', () => engine.getAll(id));
  await step('strict write to a missing session', () => engine.write(id, ['a', '1'], [], false));
  await step('getAll after refused write', () => engine.getAll(id));
  await step('write', () => engine.write(id, ['a', '1', 'b', '"two"', 'c', '{"x":[1]}'], [], true));
  await step('get', () => engine.get(id, 'b'));
  await step('mget', () => engine.mget(id, ['a', 'zz', 'c']));
  await step('getAll', async () => (await engine.getAll(id)).join(',').split(',').sort());
  await step('delete + set', () => engine.write(id, ['d', '4'], ['a', 'b'], false));
  await step('mget after', () => engine.mget(id, ['a', 'b', 'd']));
  await step('incr', () => engine.incr(id, 'd', 38, false));
  await step('incr a string', () => engine.incr(id, 'c', 1, false));
  await step('incr missing field', () => engine.incr(id, 'n', -3, false));
  await step('empty key', () => engine.get(id, ''));
  await step('bad id', () => engine.get('bad:id', 'a'));
  await step('odd pairs', () => engine.write(id, ['lonely'], [], true));
  const moved = newId(engine);
  await step('rename', () => engine.rename(id, moved));
  await step('get renamed-away', () => engine.get(id, 'd'));
  await step('get renamed', () => engine.get(moved, 'd'));
  await step('rename again (moved a moment ago)', () => engine.rename(id, newId(engine)));
  await step('rename missing', () => engine.rename(newId(engine), newId(engine)));
  await step('strict incr on a missing session', () => engine.incr(id, 'd', 1, false));
  const started = newId(engine);
  await step('start', () => engine.start(started));
  await step('getAll started', () => engine.getAll(started));
  await step('strict write to a started session', () => engine.write(started, ['s', '1'], [], false));
  await step('remove its last key', () => engine.write(started, [], ['s'], false));
  await step('strict write after emptying it', () => engine.write(started, ['t', '2'], [], false));
  await step('getAll after emptying and writing', () => engine.getAll(started));
  await step('load', () => engine.load(started));
  await step('destroy', () => engine.destroy(moved));
  await step('get destroyed', () => engine.get(moved, 'd'));
  await step('touch missing', () => engine.touch(id));
  await step('load missing', () => engine.load(id));
  await step('getAll destroyed', () => engine.getAll(id));
  await signedInSteps(engine, step);
  return log;
}

/** Sessions per user: binding, the per-request refresh, the user's index. */
async function signedInSteps(engine, step) {
  const user = 'ann';
  const [a, b, gone] = [newId(engine), newId(engine), newId(engine)];
  // Times differ between stores: only whether each field is there is compared.
  const shape = (fields) => fields.map((field, i) => (i < 2 ? field : field !== null));
  await step('bind a missing session', () => engine.bind(gone, user, '{}'));
  await step('index add', () => engine.indexAdd(user, a, false));
  await engine.start(a);
  await step('describe unbound', async () => shape(await engine.describe(a)));
  await step('bind', () => engine.bind(a, user, '{"d":1}'));
  await step('index add again', () => engine.indexAdd(user, a, false));
  await step('seen', () => engine.seen(a));
  await step('seen missing', () => engine.seen(gone));
  await step('load signed in', () => engine.load(a));
  await step('extend', () => engine.extend(a));
  await step('describe', async () => shape(await engine.describe(a)));
  await step('describe missing', async () => shape(await engine.describe(gone)));
  await step('bind keeping the meta', () => engine.bind(a, user));
  await step('describe kept meta', async () => (await engine.describe(a))[1]);
  await step('getAll of a signed-in session', () => engine.getAll(a));
  await step('index renew of an entry not there', () => engine.indexAdd(user, b, true));
  await step('index renew', () => engine.indexAdd(user, a, true));
  const named = async (ids) => (await ids).map((id) => (id === a ? 'a' : id));
  await step('index list', () => named(engine.indexList(user)));
  await step('index remove', () => engine.indexRemove(user, [a]));
  await step('index list after', () => named(engine.indexList(user)));
  await step('destroy signed in', () => engine.destroy(a));
  await step('destroy again', () => engine.destroy(a));
  await step('bad user id', () => engine.indexList(''));
}

test('every store gives the same results for the same calls: memory, one Redis, Sentinel, Cluster', async () => {
  const logs = Object.fromEntries(await Promise.all(Object.entries(engines).map(async ([name, engine]) => [name, await script(engine)])));
  const onRedis = logs.redis;
  for (const [name, log] of Object.entries(logs)) assert.deepEqual(log, onRedis, `${name} against one Redis`);
  // And the script saw what it should (not two equally broken stores).
  assert.deepEqual(onRedis.find(([name]) => name === 'mget')[1], ['1', null, '{"x":[1]}']);
  assert.deepEqual(onRedis.find(([name]) => name === 'mget after')[1], [null, null, '4']);
  assert.equal(onRedis.find(([name]) => name === 'strict write to a missing session')[1], false);
  assert.deepEqual(onRedis.find(([name]) => name === 'getAll after refused write')[1], []);
  assert.equal(onRedis.find(([name]) => name === 'incr')[1], 42);
  assert.deepEqual(onRedis.find(([name]) => name === 'incr a string').slice(1), ['error', 'ERR_SESSION_ARGUMENT']);
  assert.equal(onRedis.find(([name]) => name === 'incr missing field')[1], -3);
  assert.equal(onRedis.find(([name]) => name === 'get renamed')[1], '42');
  assert.equal(onRedis.find(([name]) => name === 'get renamed-away')[1], null);
  assert.deepEqual(onRedis.find(([name]) => name === 'rename again (moved a moment ago)').slice(1), ['error', 'ERR_SESSION_CONFLICT']);
  assert.equal(onRedis.find(([name]) => name === 'rename missing')[1], false);
  assert.equal(onRedis.find(([name]) => name === 'strict incr on a missing session')[1], false);
  assert.deepEqual(onRedis.find(([name]) => name === 'bad id').slice(1), ['error', 'ERR_SESSION_ARGUMENT']);
  assert.equal(onRedis.find(([name]) => name === 'get destroyed')[1], null);
  assert.deepEqual(onRedis.find(([name]) => name === 'getAll started')[1], [], 'its creation time is not a key');
  assert.equal(onRedis.find(([name]) => name === 'strict write to a started session')[1], true);
  assert.equal(onRedis.find(([name]) => name === 'strict write after emptying it')[1], true);
  assert.deepEqual(onRedis.find(([name]) => name === 'getAll after emptying and writing')[1], ['t', '2']);
  const result = (name) => onRedis.find(([step]) => step === name).slice(1);
  assert.deepEqual(result('bind a missing session'), [false]);
  assert.deepEqual(result('describe unbound'), [[null, null, false, false, true]]);
  assert.deepEqual(result('index add again'), [1]);
  assert.deepEqual(result('seen'), [['ann', null, null]]);
  assert.deepEqual(result('seen missing'), [false]);
  assert.deepEqual(result('load'), [[null, null, null, 't', '2']], "seen's answer, then the app's fields alone");
  assert.deepEqual(result('load missing'), [false]);
  assert.deepEqual(result('load signed in'), [['ann', null, null]]);
  assert.deepEqual(result('describe'), [['ann', '{"d":1}', true, true, true]]);
  assert.deepEqual(result('describe missing'), [[null, null, false, false, false]]);
  assert.deepEqual(result('describe kept meta'), ['{"d":1}']);
  assert.deepEqual(result('getAll of a signed-in session'), [[]]);
  assert.deepEqual(result('index renew of an entry not there'), [0]);
  assert.deepEqual(result('index list'), [['a']]);
  assert.deepEqual(result('index list after'), [[]]);
  assert.deepEqual([result('destroy signed in'), result('destroy again')], [[1], [0]]);
  assert.deepEqual(result('bad user id'), ['error', 'ERR_SESSION_ARGUMENT']);
});

test('strings cross whole: non-ASCII and astral, each cut at its own bounds; a lone surrogate fails its call alone', async () => {
  for (const [name, engine] of Object.entries(engines)) {
    const id = newId(engine);
    // One batch: its strings cross joined in one text, cut back by their lengths.
    const wrote = engine.write(id, ['clé😀', '"vé😀"', 'a', '1', 'b', '2'], [], true);
    const lone = engine.write(id, ['a\uD83D', '1'], [], true);
    const read = engine.mget(id, ['clé😀', 'a', 'b']);
    assert.equal(await wrote, true, name);
    await assert.rejects(lone, { code: 'ERR_SESSION_ARGUMENT' }, name);
    assert.deepEqual(await read, ['"vé😀"', '1', '2'], name);
    // Halves of a pair in adjacent keys stay apart: both refused, never joined into 😀.
    const halves = engine.write(id, ['x\uD83D', '1', '\uDE00y', '2'], [], true);
    await assert.rejects(halves, { code: 'ERR_SESSION_ARGUMENT' }, name);
    const fields = (await engine.getAll(id)).filter((_, i) => i % 2 === 0).sort();
    assert.deepEqual(fields, ['a', 'b', 'clé😀'], name);
  }
});

test('every store expires idle sessions after tti and keeps touched ones', async () => {
  const ids = {};
  for (const [name, engine] of Object.entries(engines)) {
    ids[name] = { idle: newId(engine), touched: newId(engine) };
    await engine.write(ids[name].idle, ['k', 'v'], [], true);
    await engine.write(ids[name].touched, ['k', 'v'], [], true);
  }
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 600));
    for (const [name, engine] of Object.entries(engines)) await engine.touch(ids[name].touched);
  }
  for (const [name, engine] of Object.entries(engines)) {
    assert.equal(await engine.get(ids[name].idle, 'k'), null, `${name}: idle session expired`);
    assert.equal(await engine.get(ids[name].touched, 'k'), 'v', `${name}: touched session kept`);
  }
});

test('values over maxValueBytes are refused with nothing written, on both stores', async () => {
  const options = JSON.stringify({ redis: { url: redis.url }, session: { maxValueBytes: 10, secret: 'k' } });
  for (const engine of [new Store('redis', options), new Store('memory', options)]) {
    const id = newId(engine);
    await assert.rejects(engine.write(id, ['ok', '1', 'big', 'x'.repeat(11)], [], true), { code: 'ERR_SESSION_TOO_LARGE' });
    assert.equal(await engine.get(id, 'ok'), null);
    await engine.close();
  }
});

test('a write that would take a session over maxFields writes nothing, on both stores', async () => {
  const options = JSON.stringify({ redis: { url: redis.url }, session: { maxFields: 3, secret: 'k' } });
  for (const engine of [new Store('redis', options), new Store('memory', options)]) {
    const id = newId(engine);
    await engine.write(id, ['a', '1', 'b', '2'], [], true);
    await assert.rejects(engine.write(id, ['b', '9', 'c', '3', 'd', '4'], [], false), { code: 'ERR_SESSION_TOO_LARGE' });
    assert.deepEqual(await engine.mget(id, ['b', 'c', 'd']), ['2', null, null], 'nothing written');
    assert.equal(await engine.write(id, ['b', '9', 'c', '3'], [], false), true, 'up to the cap is fine');
    await assert.rejects(engine.incr(id, 'd', 1, false), { code: 'ERR_SESSION_TOO_LARGE' });
    await assert.rejects(engine.write(id, Array(8).fill('x'), [], true), { code: 'ERR_SESSION_TOO_LARGE' });
    await engine.close();
  }
});

test('maxLifetime ends a session at its deadline whatever the idle refreshes, on both stores', async () => {
  const options = JSON.stringify({
    redis: { url: redis.url },
    session: { tti: 60, maxLifetime: 2, secret: 'k', prefix: `life-${process.pid}` },
  });
  const engines = [new Store('redis', options), new Store('memory', options)];
  const ids = engines.map(newId);
  await Promise.all(engines.map((engine, i) => engine.write(ids[i], ['k', '"v"'], [], true)));
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await Promise.all(engines.map((engine, j) => engine.touch(ids[j])));
  }
  for (const [i, engine] of engines.entries()) {
    assert.equal(await engine.get(ids[i], 'k'), '"v"', 'alive before the deadline');
    assert.deepEqual(await engine.getAll(ids[i]), ['k', '"v"'], 'the creation time is not an app key');
  }
  await new Promise((resolve) => setTimeout(resolve, 800));
  for (const [i, engine] of engines.entries()) {
    await engine.touch(ids[i]);
    assert.equal(await engine.get(ids[i], 'k'), null, 'gone after 2 s despite the refreshes');
    assert.equal(await engine.write(ids[i], ['k', '1'], [], false), false, 'and never revived');
  }
  await Promise.all(engines.map((engine) => engine.close()));
});

test('with maxLifetime, a session written without a creation time (by 0.0.1) keeps working', async () => {
  const { createClient } = require('redis');
  const options = JSON.stringify({ redis: { url: redis.url }, session: { maxLifetime: 100, secret: 'k' } });
  const engine = new Store('redis', options);
  const id = newId(engine);
  const raw = createClient(redis.port, redis.host);
  await new Promise((resolve, reject) => raw.hset(`session:${id}`, 'user', '"ann"', (err) => (err ? reject(err) : resolve())));
  await engine.touch(id);
  assert.equal(await engine.get(id, 'user'), '"ann"');
  assert.equal(await engine.write(id, ['n', '1'], [], false), true);
  const ttl = await new Promise((resolve, reject) => raw.ttl(`session:${id}`, (err, t) => (err ? reject(err) : resolve(t))));
  assert.ok(ttl > 90 && ttl <= 100, `the lifetime counts from the first refresh: TTL ${ttl}`);
  await assert.rejects(engine.get(id, '\u0000created'), { code: 'ERR_SESSION_ARGUMENT' });
  raw.quit();
  await engine.close();
});

test('scripts are sent by digest and resent whole to a Redis that forgot them', async () => {
  const { createClient } = require('redis');
  const raw = createClient(redis.port, redis.host);
  const command = (...args) => new Promise((resolve, reject) => raw.send_command(args[0], args.slice(1), (err, v) => (err ? reject(err) : resolve(v))));
  const engine = new Store('redis', JSON.stringify({ redis: { url: redis.url }, session: { secret: 'k' } }));
  const id = newId(engine);
  await engine.write(id, ['a', '1'], [], true);
  await command('SCRIPT', 'FLUSH');
  assert.equal(await engine.write(id, ['b', '2'], [], false), true, 'written after SCRIPT FLUSH');
  assert.equal(await engine.incr(id, 'a', 1, false), 2);
  assert.deepEqual(await engine.mget(id, ['a', 'b']), ['2', '2']);
  raw.quit();
  await engine.close();
});
