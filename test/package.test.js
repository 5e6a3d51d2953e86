'use strict';

// The package as users get it: `npm pack`, then `npm install <tarball>` into a
// fresh Express app (which builds the Rust engine from source through the
// install script), then a real app using it with mock() and with Redis.
// Slow (a from-scratch release build with LTO): ALT_SESSION_SKIP_PACK_TEST=1 skips it.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startRedis } = require('./helpers/redis');
const { connectRedis } = require('./helpers/redis-client');
const { runProcess } = require('./helpers/child-process');

const ROOT = path.resolve(__dirname, '..');
const SKIP = process.env.ALT_SESSION_SKIP_PACK_TEST === '1' && 'ALT_SESSION_SKIP_PACK_TEST=1';
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const INSTALL_TIMEOUT_MS = 10 * 60 * 1000;

const tail = (text, lines = 40) => text.split('\n').slice(-lines).join('\n');

// The app a user would write: the original's way (cookie-parser(secret) before
// the middleware, callbacks) on mock(), and the new way (session.secret,
// promises) on Redis. Prints one JSON line.
const APP_SCRIPT = `'use strict';
const http = require('node:http');
const express = require('express');
const cookieParser = require('cookie-parser');
const altSession = require('alt-session');

function get(port, path, cookie) {
  return new Promise((resolve, reject) => {
    const headers = { connection: 'close' };
    if (cookie) headers.cookie = cookie;
    http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, setCookie: res.headers['set-cookie'] || [], body: JSON.parse(body) }));
    }).on('error', reject);
  });
}

async function scenario(mw, withCookieParser) {
  const app = express();
  if (withCookieParser) app.use(cookieParser('parser secret'));
  app.use(mw);
  app.get('/visit', (req, res, next) => {
    // Written for the original: callbacks only.
    req.session.get('visits', (err, visits) => {
      if (err) return next(err);
      const next_ = (visits || 0) + 1;
      req.session.set('visits', next_, (err) => {
        if (err) return next(err);
        req.session.mget(['visits', 'none'], (err, values) => {
          if (err) return next(err);
          res.json({ id: req.session.id, isNew: req.session.isNew, visits: next_, values });
        });
      });
    });
  });
  app.get('/promises', async (req, res, next) => {
    try {
      await req.session.mset({ user: { name: 'ada' }, role: 'admin' });
      await req.session.remove('role');
      res.json({ all: await req.session.getAll(), role: await req.session.get('role') });
    } catch (err) {
      next(err);
    }
  });
  app.use((err, req, res, next) => res.status(500).json({ code: err.code, message: err.message }));
  const server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const port = server.address().port;
  const first = await get(port, '/visit');
  const cookie = first.setCookie.length ? first.setCookie[0].split(';')[0] : undefined;
  const second = await get(port, '/visit', cookie);
  const promises = await get(port, '/promises', cookie);
  await new Promise((resolve) => server.close(resolve));
  return { first, second, promises, cookie };
}

(async () => {
  const mock = await scenario(altSession.mock(), true);
  const mw = altSession({
    redis: { port: Number(process.env.REDIS_PORT) },
    session: { secret: 'app secret', prefix: 'packtest' },
  });
  const redis = await scenario(mw, false);
  await mw.close();
  console.log(JSON.stringify({
    resolved: require.resolve('alt-session'),
    exports: { middleware: typeof altSession, mock: typeof altSession.mock },
    mock,
    redis,
  }));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
`;

describe('the npm package, packed and installed into a fresh Express app', { skip: SKIP }, () => {
  let tmp;
  let tarball;
  let entries;
  let redis;
  let db;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-pack-'));
    const packed = await runProcess(NPM, ['pack', '--pack-destination', tmp, '--json'], { cwd: ROOT, timeoutMs: 120000 });
    assert.equal(packed.code, 0, `npm pack failed:\n${tail(packed.stderr)}`);
    const [info] = JSON.parse(packed.stdout);
    tarball = path.join(tmp, info.filename);
    assert.ok(fs.existsSync(tarball), `no tarball at ${tarball}`);
    const listed = await runProcess('tar', ['-tzf', tarball]);
    assert.equal(listed.code, 0, listed.stderr);
    entries = listed.stdout.split('\n').filter(Boolean).map((e) => e.replace(/^package\//, ''));
  });

  after(async () => {
    if (db) await db.quit();
    if (redis) await redis.stop();
    if (tmp && !process.env.ALT_SESSION_KEEP_PACK_DIR) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the tarball holds the sources to build from, and no build output', () => {
    for (const required of ['package.json', 'index.js', 'index.d.ts', 'binding.js', 'scripts/build.js', 'Cargo.toml', 'Cargo.lock', 'build.rs', 'src/lib.rs']) {
      assert.ok(entries.includes(required), `${required} missing from the tarball: ${entries.join(', ')}`);
    }
    assert.ok(entries.some((e) => e.startsWith('src/store/')), 'src/store/ missing from the tarball');
    for (const entry of entries) {
      assert.ok(!entry.startsWith('target/'), `build directory in the tarball: ${entry}`);
      assert.ok(!entry.endsWith('.node'), `prebuilt addon in the tarball: ${entry}`);
      assert.ok(!entry.startsWith('node_modules/'), `node_modules in the tarball: ${entry}`);
    }
  });

  test('npm install <tarball> builds the engine, and an Express app uses it (mock and Redis)', { timeout: INSTALL_TIMEOUT_MS }, async (t) => {
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'alt-session-pack-test-app', version: '1.0.0', private: true }, null, 2)
    );
    fs.writeFileSync(path.join(app, 'app.js'), APP_SCRIPT);

    const installed = await runProcess(
      NPM,
      ['install', tarball, 'express@4', 'cookie-parser', '--no-audit', '--no-fund', '--foreground-scripts'],
      { cwd: app, timeoutMs: INSTALL_TIMEOUT_MS - 30000 }
    );
    t.diagnostic(`npm install (with the native build) took ${Math.round(installed.ms / 1000)} s`);
    assert.equal(installed.code, 0, `npm install failed:\n${tail(installed.stdout)}\n${tail(installed.stderr)}`);

    const pkgDir = path.join(app, 'node_modules', 'alt-session');
    assert.ok(fs.existsSync(path.join(pkgDir, 'alt-session.node')), 'the install script did not produce alt-session.node');
    const manifest = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
    assert.equal(manifest.name, 'alt-session');

    redis = await startRedis();
    db = connectRedis(redis);
    const ran = await runProcess(process.execPath, ['app.js'], {
      cwd: app,
      env: { REDIS_PORT: String(redis.port), NODE_PATH: '' },
      timeoutMs: 30000,
    });
    assert.equal(ran.code, 0, `the app failed (or did not exit by itself):\n${ran.stdout}\n${ran.stderr}`);
    const out = JSON.parse(ran.stdout.trim().split('\n').pop());

    assert.equal(out.resolved, path.join(pkgDir, 'index.js'), 'the app must use the installed package');
    assert.deepEqual(out.exports, { middleware: 'function', mock: 'function' });

    for (const [name, result] of Object.entries({ mock: out.mock, redis: out.redis })) {
      const { first, second, promises, cookie } = result;
      assert.equal(first.status, 200, `${name}: ${JSON.stringify(first.body)}`);
      assert.match(cookie || '', /^sid=s%3A[^;]+$/, `${name}: the signed sid cookie`);
      assert.equal(first.body.isNew, true, name);
      assert.equal(first.body.visits, 1, name);
      assert.deepEqual(first.body.values, { visits: 1, none: null }, name);
      assert.equal(second.status, 200, `${name}: ${JSON.stringify(second.body)}`);
      assert.equal(second.body.id, first.body.id, `${name}: the cookie brings the session back`);
      assert.equal(second.body.isNew, false, name);
      assert.equal(second.body.visits, 2, name);
      assert.deepEqual(second.body.values, { visits: 2, none: null }, name);
      assert.equal(promises.status, 200, `${name}: ${JSON.stringify(promises.body)}`);
      assert.deepEqual(promises.body, { all: { visits: 2, user: { name: 'ada' } }, role: null }, name);
    }
    assert.notEqual(out.mock.first.body.id, out.redis.first.body.id);

    // The Redis app really stored the original's layout: one hash per session.
    const key = `packtest:${out.redis.first.body.id}`;
    assert.deepEqual(await db.sessionData(key), { visits: '2', user: JSON.stringify({ name: 'ada' }) });
    const ttl = await db.command('TTL', key);
    assert.ok(ttl > 0 && ttl <= 300, `idle TTL ${ttl}`);
  });
});
