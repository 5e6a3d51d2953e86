'use strict';

// The packages as users get them: `npm run dist` packs the main package and
// this platform's binary package; they are installed into fresh Express apps
// (a temporary folder each) and used for real, with mock() and with Redis,
// from CommonJS, ES modules and TypeScript. On a prebuilt platform nothing
// compiles, even with no Rust on the machine; without the platform package the
// first require builds the engine where cargo is, and otherwise says why it
// cannot. ALT_SESSION_SKIP_PACK_TEST=1 skips it.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startRedis } = require('../__test__/servers/redis');
const { connectRedis } = require('../__test__/servers/redis-client');
const { runProcess } = require('../__test__/servers/child-process');

const ROOT = path.resolve(__dirname, '..');
const SKIP = process.env.ALT_SESSION_SKIP_PACK_TEST === '1' && 'ALT_SESSION_SKIP_PACK_TEST=1';
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const INSTALL_TIMEOUT_MS = 3 * 60 * 1000;
const { platform, bindingPackage } = require('../lib/platform');
const { version } = require('../package.json');

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

describe('the packages of `npm run dist`, installed into fresh Express apps', { skip: SKIP }, () => {
  let tmp;
  let tarballs; // { main, binary }
  let redis;
  let db;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'alt-session-dist-'));
    const dist = await runProcess(NPM, ['run', 'dist'], { cwd: ROOT, timeoutMs: INSTALL_TIMEOUT_MS });
    assert.equal(dist.code, 0, `npm run dist failed:\n${tail(dist.stdout)}\n${tail(dist.stderr)}`);
    tarballs = {
      main: path.join(ROOT, 'dist', `alt-session-${version}.tgz`),
      binary: path.join(ROOT, 'dist', `${bindingPackage}-${version}.tgz`),
    };
    for (const file of Object.values(tarballs)) assert.ok(fs.existsSync(file), `npm run dist made no ${file}`);
    redis = await startRedis();
    db = connectRedis(redis);
  });

  after(async () => {
    if (db) await db.quit();
    if (redis) await redis.stop();
    if (tmp && !process.env.ALT_SESSION_KEEP_PACK_DIR) fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A new app folder holding APP_SCRIPT; returns its path. */
  function newApp(name) {
    const app = path.join(tmp, name);
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: `alt-session-${name}`, version: '1.0.0', private: true }));
    fs.writeFileSync(path.join(app, 'app.js'), APP_SCRIPT);
    return app;
  }

  /** An environment with no Rust: cargo and rustc off PATH, CARGO_HOME and RUSTUP_HOME empty. */
  function withoutRust() {
    const empty = fs.mkdtempSync(path.join(tmp, 'no-rust-'));
    const hasRust = (dir) => ['cargo', 'rustc', 'rustup'].some((bin) => fs.existsSync(path.join(dir, bin)));
    const PATH = process.env.PATH.split(path.delimiter)
      .filter((dir) => dir && !hasRust(dir))
      .join(path.delimiter);
    return { PATH, CARGO_HOME: path.join(empty, 'cargo'), RUSTUP_HOME: path.join(empty, 'rustup') };
  }

  async function npmInstall(app, packages, env, flags = []) {
    const installed = await runProcess(NPM, ['install', ...packages, '--no-audit', '--no-fund', ...flags], { cwd: app, env, timeoutMs: INSTALL_TIMEOUT_MS });
    assert.equal(installed.code, 0, `npm install failed:\n${tail(installed.stdout)}\n${tail(installed.stderr)}`);
    return installed;
  }

  /** Runs the app with Redis; returns its parsed output line. */
  async function runApp(app, env, timeoutMs = 60000) {
    const ran = await runProcess(process.execPath, ['app.js'], { cwd: app, env: { ...env, REDIS_PORT: String(redis.port), NODE_PATH: '' }, timeoutMs });
    assert.equal(ran.code, 0, `the app failed (or did not exit by itself):\n${ran.stdout}\n${ran.stderr}`);
    return { out: JSON.parse(ran.stdout.trim().split('\n').pop()), stderr: ran.stderr };
  }

  test('the main tarball holds the loader and the sources to build from, never a binary; the platform one holds its binary', async () => {
    const list = async (file) =>
      (await runProcess('tar', ['-tzf', file])).stdout
        .split('\n')
        .filter(Boolean)
        .map((e) => e.replace(/^package\//, ''));
    const main = await list(tarballs.main);
    for (const required of [
      'package.json',
      'index.js',
      'index.mjs',
      'index.d.ts',
      'lib/native.js',
      'lib/platform.js',
      'lib/store.js',
      'lib/session.js',
      'binding.js',
      'scripts/install.js',
      'scripts/build.js',
      'Cargo.toml',
      'Cargo.lock',
      'build.rs',
      'src/lib.rs',
      'src/store/redis/scripts/write.lua',
    ]) {
      assert.ok(main.includes(required), `${required} missing from the main tarball: ${main.join(', ')}`);
    }
    for (const entry of main) {
      assert.ok(!/^(target|node_modules|npm|dist)\//.test(entry) && !entry.endsWith('.node'), `${entry} in the main tarball`);
    }
    assert.deepEqual((await list(tarballs.binary)).sort(), ['README.md', `alt-session.${platform}.node`, 'package.json']);
    const manifest = JSON.parse((await runProcess('tar', ['-xzOf', tarballs.main, 'package/package.json'])).stdout);
    assert.equal(manifest.optionalDependencies[bindingPackage], version, 'the platform package is an optionalDependency');
    assert.equal(Object.keys(manifest.optionalDependencies).length, 7);
  });

  test('prebuilt: installed with no Rust on the machine, nothing compiles; CommonJS, ES modules and TypeScript use it', {
    timeout: INSTALL_TIMEOUT_MS,
  }, async (t) => {
    const app = newApp('prebuilt');
    const env = withoutRust();
    const installed = await npmInstall(app, [tarballs.main, tarballs.binary, 'express@4', 'cookie-parser', '@types/node@20'], env);
    t.diagnostic(`npm install of the two tarballs (and Express), no Rust on PATH: ${(installed.ms / 1000).toFixed(1)} s`);
    const log = installed.stdout + installed.stderr;
    assert.doesNotMatch(log, /Compiling|building/, 'nothing was built at install');
    const pkgDir = path.join(app, 'node_modules', 'alt-session');
    assert.deepEqual(
      fs.readdirSync(pkgDir).filter((f) => f.endsWith('.node') || f === 'target'),
      [],
      'no binary or build in the main package'
    );

    const { out, stderr } = await runApp(app, env);
    assert.doesNotMatch(stderr, /building/, 'nothing was built at require');
    assert.equal(out.resolved, path.join(pkgDir, 'index.js'), 'the app must use the installed package');
    assert.deepEqual(out.exports, { middleware: 'function', mock: 'function' });
    assertSessionsServed(out);
    const key = `packtest:${out.redis.first.body.id}`;
    assert.deepEqual(await db.sessionData(key), { visits: '2', user: JSON.stringify({ name: 'ada' }) });

    // ES modules: the default export and the named ones.
    fs.writeFileSync(
      path.join(app, 'esm.mjs'),
      `import altSession, { altSession as named, mock } from 'alt-session';
       import { createRequire } from 'node:module';
       const required = createRequire(import.meta.url)('alt-session');
       const mw = mock({ session: { secret: 's' } });
       console.log(JSON.stringify({ default: typeof altSession, same: altSession === required && named === required && mock === required.mock, mw: typeof mw }));
       await mw.close();`
    );
    const esm = await runProcess(process.execPath, ['esm.mjs'], { cwd: app, env, timeoutMs: 30000 });
    assert.equal(esm.code, 0, esm.stderr);
    assert.deepEqual(JSON.parse(esm.stdout), { default: 'function', same: true, mw: 'function' });

    // TypeScript with module nodenext: import default, import named (ESM), import = require (CommonJS).
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, types: ['node'] },
        files: ['typed.mts', 'typed.cts'],
      })
    );
    fs.writeFileSync(
      path.join(app, 'typed.mts'),
      `import altSession, { altSession as named, mock } from 'alt-session';
const options: altSession.Options = { session: { secret: 's', sameSite: 'strict' } };
const mw: altSession.Middleware = altSession(options);
const other: altSession.Middleware = named(options);
const fake: altSession.Middleware = mock(options);
void [mw, other, fake];
`
    );
    fs.writeFileSync(
      path.join(app, 'typed.cts'),
      `import altSession = require('alt-session');
const mw: altSession.Middleware = altSession.mock({ session: { secret: 's' } });
void mw;
`
    );
    const tsc = path.join(path.dirname(require.resolve('typescript/package.json', { paths: [ROOT] })), 'bin', 'tsc');
    const typed = await runProcess(process.execPath, [tsc, '-p', app], { cwd: app, env, timeoutMs: 60000 });
    assert.equal(typed.code, 0, `tsc:\n${typed.stdout}${typed.stderr}`);
  });

  test('no platform package and no Rust: the install finishes, and require names the platform, the packages and the two ways out', {
    timeout: INSTALL_TIMEOUT_MS,
  }, async () => {
    const app = newApp('unsupported');
    const env = withoutRust();
    await npmInstall(app, [tarballs.main], env);
    const probe = `try { require('alt-session'); console.log('loaded'); } catch (err) { console.log(JSON.stringify({ code: err.code, message: err.message })); }`;
    const ran = await runProcess(process.execPath, ['-e', probe], { cwd: app, env, timeoutMs: 30000 });
    const err = JSON.parse(ran.stdout);
    assert.equal(err.code, 'ERR_SESSION_NATIVE');
    for (const needed of [platform, bindingPackage, `alt-session.${platform}.node`, 'https://rustup.rs', 'npm bugs alt-session']) {
      assert.ok(err.message.includes(needed), `the error does not mention ${needed}: ${err.message}`);
    }
  });

  test('no platform package, with cargo: the first require builds the engine from source, saying so, and it serves', {
    timeout: INSTALL_TIMEOUT_MS,
  }, async (t) => {
    const app = newApp('from-source');
    // Without install scripts, as npm 11 installs dependencies it has no approval for:
    // the build falls to the first require. (Where scripts run, install.js builds it the same way.)
    await npmInstall(app, [tarballs.main, 'express@4', 'cookie-parser'], {}, ['--ignore-scripts']);
    // The repository's target folder: `npm run dist` built its dependencies for the host target
    // already, so only the crate is built (a minute from nothing; the bound allows for that).
    const { out, stderr } = await runApp(app, { CARGO_TARGET_DIR: path.join(ROOT, 'target') }, INSTALL_TIMEOUT_MS - 30000);
    assert.match(stderr, new RegExp(`no prebuilt engine for ${platform}.*building it from source`));
    t.diagnostic(
      stderr
        .split('\n')
        .filter((l) => /Finished/.test(l))
        .join(' ')
    );
    assert.ok(fs.existsSync(path.join(app, 'node_modules', 'alt-session', `alt-session.${platform}.node`)));
    assertSessionsServed(out);
  });
});

/** What APP_SCRIPT saw through both middlewares: a session kept across requests, callbacks and promises. */
function assertSessionsServed(out) {
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
}
