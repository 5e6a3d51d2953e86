'use strict';

// Managed Redis: TLS (rediss://, a CA of the test's own, client certificates)
// and ACL users, against redis-servers this file starts, with throwaway
// certificates made by openssl. Failures come with codes, in bounded time,
// and the process stays up.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const { startRedis, noTls } = require('../__test__/servers/redis');
const { connectRedis } = require('../__test__/servers/redis-client');
const { makeCertificates } = require('../__test__/servers/certificates');
const { withSessionApp, passThrough } = require('./helpers/session-server');
const { CookieJar } = require('./helpers/http');
const altSession = require('..');

const SECRET = 'tls test';
const CONNECT_TIMEOUT_MS = 1000;

const certificates = makeCertificates();
after(() => certificates.remove());

/** The TLS server options for startRedis. */
function tlsServer(authClients) {
  return { cert: certificates.serverCert, key: certificates.serverKey, ca: certificates.ca, authClients };
}

/** An app on `redis` options: a write and a read back over HTTP; returns what the route saw. */
async function writeAndRead(redis, session = {}) {
  return withSessionApp(express, { redis, session: { secret: SECRET, ...session } }, async (app) => {
    const jar = new CookieJar();
    const written = await app.run((s) => s.set('k', { over: 'tls' }), { jar });
    const read = await app.run((s) => s.get('k'), { jar });
    return { written, read, sameSession: written.session && read.session && written.session.id === read.session.id };
  });
}

/** A call through a middleware on `redis` options that must fail: its code and how long it took. */
async function failure(redis) {
  // refreshErrors: 'next': the per-request refresh's error, the first call's, reaches the app.
  const mw = altSession({
    redis: { connectTimeout: CONNECT_TIMEOUT_MS, commandTimeout: CONNECT_TIMEOUT_MS, ...redis },
    session: { secret: SECRET, refreshErrors: 'next' },
  });
  const start = Date.now();
  const { err } = await passThrough(mw);
  const ms = Date.now() - start;
  await mw.close();
  return { err, ms };
}

// Each test skipped on its own where the server has no TLS, so that it counts in `# skipped`.
describe('TLS (rediss://)', () => {
  let server;
  before(async () => {
    if (noTls()) return;
    server = await startRedis({ tls: tlsServer(false) });
  });
  after(() => server && server.stop());

  test('set and get through Express over rediss:// with the test CA', { skip: noTls() }, async () => {
    const { written, read, sameSession } = await writeAndRead({ url: server.url, tls: { ca: certificates.pem('ca.crt') } });
    assert.equal(written.error, undefined);
    assert.equal(read.value.over, 'tls');
    assert.ok(sameSession);
  });

  test('the CA as a Buffer, and host/port with tls: { ca } instead of a URL', { skip: noTls() }, async () => {
    const fs = require('node:fs');
    const { read } = await writeAndRead({ host: '127.0.0.1', port: server.port, tls: { ca: fs.readFileSync(certificates.ca) } });
    assert.deepEqual(read.value, { over: 'tls' });
  });

  test('a server certificate that does not verify (another CA, or none given) fails with ERR_SESSION_TLS within connectTimeout', {
    skip: noTls(),
  }, async (t) => {
    for (const [name, tls] of Object.entries({ 'another CA': { ca: certificates.pem('other-ca.crt') }, "Node's CAs": true })) {
      const { err, ms } = await failure({ url: server.url, tls });
      t.diagnostic(`${name}: ${err.code} after ${ms} ms: ${err.message}`);
      assert.equal(err.code, 'ERR_SESSION_TLS', err.message);
      assert.match(err.message, /certificate/i);
      assert.ok(ms < CONNECT_TIMEOUT_MS, `${ms} ms`);
    }
  });

  test('a certificate for another name fails with ERR_SESSION_TLS; servername picks the name to check', { skip: noTls() }, async () => {
    const wrongName = await failure({ url: server.url, tls: { ca: certificates.pem('ca.crt'), servername: 'redis.example.com' } });
    assert.equal(wrongName.err.code, 'ERR_SESSION_TLS', wrongName.err.message);
    const { read } = await writeAndRead({ url: server.url, tls: { ca: certificates.pem('ca.crt'), servername: 'localhost' } });
    assert.deepEqual(read.value, { over: 'tls' });
  });

  test('plain TCP against the TLS port fails in bounded time, and TLS against a plain server with ERR_SESSION_TLS', { skip: noTls() }, async () => {
    const plainToTls = await failure({ host: '127.0.0.1', port: server.port });
    assert.ok(['ERR_SESSION_CONNECTION', 'ERR_SESSION_TIMEOUT'].includes(plainToTls.err.code), plainToTls.err.message);
    assert.ok(plainToTls.ms < 2 * CONNECT_TIMEOUT_MS + 500);
    const plain = await startRedis();
    try {
      // (commandTimeout past connectTimeout: the handshake's own deadline speaks first.)
      const tlsToPlain = await failure({ host: '127.0.0.1', port: plain.port, tls: { ca: certificates.pem('ca.crt') }, commandTimeout: 3000 });
      assert.equal(tlsToPlain.err.code, 'ERR_SESSION_TLS', tlsToPlain.err.message);
    } finally {
      await plain.stop();
    }
  });

  test('bad TLS options throw ERR_SESSION_CONFIG at once', { skip: noTls() }, () => {
    for (const tls of ['yes', { ca: 'not a certificate' }, { cert: certificates.pem('client.crt') }, { rejectUnauthorized: 'no' }]) {
      assert.throws(() => altSession({ redis: { tls }, session: { secret: SECRET } }), { code: 'ERR_SESSION_CONFIG' }, JSON.stringify(tls));
    }
  });
});

// Each test skipped on its own where the server has no TLS, so that it counts in `# skipped`.
describe('TLS with client certificates (tls-auth-clients yes)', () => {
  let server;
  before(async () => {
    if (noTls()) return;
    server = await startRedis({ tls: tlsServer(true) });
  });
  after(() => server && server.stop());

  test('works with cert and key', { skip: noTls() }, async () => {
    const tls = { ca: certificates.pem('ca.crt'), cert: certificates.pem('client.crt'), key: certificates.pem('client.key') };
    const { read } = await writeAndRead({ url: server.url, tls });
    assert.deepEqual(read.value, { over: 'tls' });
  });

  test('is refused without them, with ERR_SESSION_TLS, in bounded time', { skip: noTls() }, async (t) => {
    const { err, ms } = await failure({ url: server.url, tls: { ca: certificates.pem('ca.crt') } });
    t.diagnostic(`${err.code} after ${ms} ms: ${err.message}`);
    assert.equal(err.code, 'ERR_SESSION_TLS', err.message);
    assert.ok(ms < CONNECT_TIMEOUT_MS, `${ms} ms`);
  });
});

describe('an ACL user limited to its prefix and the commands the README lists', () => {
  const PREFIX = 'acl-app';
  // What README.md's data format section says an ACL user needs.
  const COMMANDS =
    'hget hmget hgetall expire del evalsha eval exists hset hsetnx hdel hlen hexists hincrby pexpire rename set time script|load zadd zrem zscore zrange zrangebyscore pexpireat';
  let server;
  let admin;
  before(async () => {
    server = await startRedis();
    admin = connectRedis(server);
    const rules = ['on', '>app-password', `~${PREFIX}:*`, '-@all', ...COMMANDS.split(' ').map((c) => `+${c}`)];
    assert.equal(await admin.command('ACL', 'SETUSER', 'app', ...rules), 'OK');
  });
  after(async () => {
    await admin.quit();
    await server.stop();
  });

  test('works for every method, regenerate(), incr() and the sessions of a user included', async () => {
    const redis = { host: '127.0.0.1', port: server.port, username: 'app', password: 'app-password' };
    await withSessionApp(express, { redis, session: { secret: SECRET, prefix: PREFIX, maxLifetime: 3600 } }, async (app) => {
      const jar = new CookieJar();
      const r = await app.run(
        async (s) => {
          await s.mset({ a: 1, b: 2 });
          await s.incr('n', 5);
          await s.remove('b');
          await s.touch();
          await s.regenerate();
          return { all: await s.getAll(), a: await s.get('a'), m: await s.mget(['a', 'n']) };
        },
        { jar }
      );
      assert.equal(r.error, undefined, r.error && r.error.message);
      assert.deepEqual(r.value, { all: { a: 1, n: 5 }, a: 1, m: { a: 1, n: 5 } });
      const login = await app.run(async (s) => (await s.login('ann', { meta: 'm' }), s.userId), { jar });
      assert.equal(login.error, undefined, login.error && login.error.message);
      await app.run((s) => s.touch(), { jar });
      assert.deepEqual(
        (await app.mw.sessions('ann')).map((s) => s.meta),
        ['m']
      );
      const logout = await app.run((s) => s.logout(), { jar });
      assert.equal(logout.error, undefined);
      await app.run((s) => s.login('ann'), { jar: new CookieJar() });
      assert.equal(await app.mw.revoke('ann'), 1);
    });
    assert.deepEqual(
      (await admin.keys('*')).filter((k) => !k.startsWith(`${PREFIX}:`)),
      [],
      'nothing outside the prefix'
    );
  });

  test('a wrong password fails with ERR_SESSION_AUTH within connectTimeout', async () => {
    const { err, ms } = await failure({ host: '127.0.0.1', port: server.port, username: 'app', password: 'wrong' });
    assert.equal(err.code, 'ERR_SESSION_AUTH', err.message);
    assert.match(err.message, /WRONGPASS/);
    assert.ok(ms < CONNECT_TIMEOUT_MS);
  });
});
