'use strict';

// One Express app of the HTTP benchmark, run as a child process of http.js so
// that the app and the load generator do not share a process (or an event loop).
//
//   node bench/http-app.js <config> <port> <redisPort>
//
// Every configuration serves the same three routes (and /new, which is /none
// from new visitors):
//   GET /none   never touches the session          -> 'ok'
//   GET /read   reads key `n`                       -> n
//   GET /write  reads `n`, stores n + 1 (a counter) -> n + 1
// and the express-session-style apps (express-session, ours-express) also
//   GET /passport  reads `passport.user` (as passport's deserializeUser
//                  would), changes one other property -> the user
// and `ours-signed-in` GET /start, which its pooled sessions start with (signs
// in, then stores n = 1).
// `bare` has no session middleware at all: Express alone on this machine (the
// reference every ratio to it is a share of; not always a ceiling, see README.md);
// `bare-cookie-parser` is Express behind cookie-parser with a signed cookie, the
// baseline of the apps behind cookie-parser (0.0.1, ours-cookie-parser);
// `bare-redis` is Express awaiting a session's Redis commands on ioredis, with
// no session logic: what waiting for Redis costs any session on it.
//
// This file lives in bench/ on purpose: `require('redis')` from here is
// node-redis v5 (bench/node_modules, what connect-redis 9 needs), while
// alt-session-original, installed in the package root, resolves its own
// `require('redis')` to redis@3 as 0.0.1 always did.

const fs = require('node:fs');
const express = require('express');
const { observe } = require('./observe');

const SECRET = 'alt-session benchmark secret';
// An hour of idle life for the pooled sessions of alt-session and 0.0.1 (the
// default is 300 s; connect-redis keeps a day): rounds interleave every app,
// and the gap between two turns of one app reached 5 minutes. An expired
// pooled session would start over, and its lost counter fail the run.
const TTI = 3600;
const CONFIGS = {
  bare: () => bare,
  // The baseline of every app behind cookie-parser (0.0.1's setup): Express, cookie-parser and a signed cookie.
  'bare-cookie-parser': () => bareCookieParser,
  // Express awaiting the Redis commands a session's requests send (no session logic), on ioredis.
  'bare-redis': bareRedis,
  ours: (redisPort) => ours(redisPort, {}),
  // alt-session as 0.0.1's users run it: behind cookie-parser(secret), without session.secret.
  'ours-cookie-parser': (redisPort) => ours(redisPort, {}, {}, undefined, { cookieParser: true }),
  'ours-nonblocking': (redisPort) => ours(redisPort, { awaitTouch: false }),
  // session.lazy: a new visitor that writes nothing costs no cookie and no Redis command (/new).
  'ours-lazy': (redisPort) => ours(redisPort, { lazy: true }),
  // Sessions per user on: every session signs in as it starts (one of 20 users).
  'ours-signed-in': (redisPort) => ours(redisPort, {}, {}, signedInStart),
  original,
  'express-session': expressSession,
  // alt-session/express-session: express-session's API on our engine, the options of the express-session config.
  'ours-express': (redisPort) => expressStyleRoutes(require('../express-session'), { redis: { host: '127.0.0.1', port: redisPort } }),
  // Over TLS: <redisPort> is a TLS port, BENCH_TLS_CA the file of the CA that signed its certificate.
  'ours-tls': (redisPort) => ours(redisPort, {}, { tls: { ca: fs.readFileSync(process.env.BENCH_TLS_CA) } }),
  'express-session-tls': expressSessionOnIoredisTls,
  // On a Redis Cluster: BENCH_CLUSTER_NODES is its nodes, as JSON [{ host, port }].
  'ours-cluster': () => ours(null, {}, { cluster: { nodes: JSON.parse(process.env.BENCH_CLUSTER_NODES) } }),
  // Durable writes: every write waits until the one replica of <redisPort> confirms it.
  'ours-durable': (redisPort) => ours(redisPort, {}, { waitReplicas: 1 }),
  // Watched by operators: OpenTelemetry's SDK collecting the metrics, and a tracing subscriber.
  'ours-observed': (redisPort) => (observe(), ours(redisPort, {})),
  'express-session-cluster': expressSessionOnIoredisCluster,
};

/** No session: /read and /write answer without doing any session work. */
function bare(app) {
  app.get('/none', (req, res) => res.send('ok'));
  app.get('/read', (req, res) => res.send('ok'));
  app.get('/write', (req, res) => res.send('ok'));
}

/**
 * Express behind cookie-parser(secret): a visitor without the signed cookie
 * gets one on /write (so the pool carries it), and every request's cookie is
 * verified by cookie-parser, as behind any middleware that relies on it.
 */
function bareCookieParser(app) {
  app.use(require('cookie-parser')(SECRET));
  app.get('/none', (req, res) => res.send('ok'));
  app.get('/read', (req, res) => res.send('ok'));
  app.get('/write', (req, res) => {
    if (!req.signedCookies.sid) res.cookie('sid', require('node:crypto').randomUUID(), { signed: true, httpOnly: true });
    res.send('ok');
  });
}

/**
 * The Redis work of a session without the session: before the route, an
 * EXPIRE awaited (the idle refresh); /read an HGET, /write an HGET then an
 * HSET, on ioredis (auto-pipelined, as a busy client would be), on one key
 * per cookie as it arrived. What any session on Redis waits for and pays to
 * wait for; everything ours costs beyond it is its own logic.
 */
async function bareRedis(redisPort) {
  const Redis = require('ioredis');
  const client = new Redis({ host: '127.0.0.1', port: redisPort, enableAutoPipelining: true });
  await new Promise((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  });
  const keyOf = (req) => `bare:${req.headers.cookie || ''}`;
  return (app) => {
    app.use((req, res, next) => client.expire(keyOf(req), TTI).then(() => next(), next));
    app.get('/none', (req, res) => res.send('ok'));
    app.get('/read', (req, res, next) => client.hget(keyOf(req), 'n').then((n) => res.send(String(n)), next));
    app.get('/write', (req, res, next) => {
      const key = keyOf(req);
      client
        .hget(key, 'n')
        .then((n) => client.hset(key, 'n', JSON.stringify(Number(n || 0) + 1)))
        .then(() => {
          if (!req.headers.cookie) res.cookie('sid', require('node:crypto').randomUUID()); // so the pool carries one
          res.send('ok');
        }, next);
    });
  };
}

/**
 * alt-session (this package), default options apart from the secret and
 * `tti`; `cookieParser`: behind cookie-parser(secret), whose secret it signs with.
 */
function ours(redisPort, extra, redisExtra = {}, start, { cookieParser = false } = {}) {
  const altSession = require('..');
  return (app) => {
    const redis = { host: '127.0.0.1', port: redisPort, ...redisExtra };
    if (cookieParser) app.use(require('cookie-parser')(SECRET));
    app.use(altSession({ redis, session: { ...(cookieParser ? {} : { secret: SECRET }), tti: TTI, ...extra } }));
    perKeyRoutes(app);
    if (start) app.get('/start', start); // after the measured routes: they match before it
    // An atomic counter, for bench/soak.js to count every write (not measured here).
    app.get('/incr', (req, res, next) => req.session.incr('n').then((n) => res.send(String(n)), next));
  };
}

let signedIn = 0;

/**
 * GET /start: what a pooled session of `ours-signed-in` starts with, the
 * first /write of a session that signs in (one of 20 users) first. A route
 * of its own, so that the measured requests pass the same layers as `ours`'.
 */
function signedInStart(req, res, next) {
  req.session
    .login(`user${signedIn++ % 20}`, { meta: { device: 'bench' } })
    .then(() => req.session.set('n', 1))
    .then(() => res.send('1'), next);
}

/** alt-session@0.0.1 as its README says to mount it: cookie-parser(secret) first. */
function original(redisPort) {
  const cookieParser = require('cookie-parser');
  const altSessionOriginal = require('alt-session-original');
  return (app) => {
    app.use(cookieParser(SECRET));
    app.use(altSessionOriginal({ redis: { host: '127.0.0.1', port: redisPort }, session: { tti: TTI } }));
    perKeyRoutes(app);
  };
}

/**
 * The same handlers for ours and the original, written against 0.0.1's
 * callback API: the code a user keeps when swapping the package.
 */
function perKeyRoutes(app) {
  app.get('/none', (req, res) => res.send('ok'));
  app.get('/read', (req, res, next) => {
    req.session.get('n', (err, n) => {
      if (err) return next(err);
      res.send(String(n));
    });
  });
  app.get('/write', (req, res, next) => {
    req.session.get('n', (err, n) => {
      if (err) return next(err);
      const next_ = (n || 0) + 1;
      req.session.set('n', next_, (err2) => {
        if (err2) return next(err2);
        res.send(String(next_));
      });
    });
  });
}

/**
 * express-session + connect-redis 9 on a node-redis v5 client: the usual
 * stack. The whole session is loaded on every request and saved by the store
 * when modified (otherwise only touched), as that middleware always does.
 */
async function expressSession(redisPort) {
  const { createClient } = require('redis');
  const client = createClient({ url: `redis://127.0.0.1:${redisPort}` });
  client.on('error', (err) => console.error('express-session redis client:', err.message));
  await client.connect();
  return expressSessionRoutes(client);
}

/** The express-session app on a connected client, through connect-redis's `RedisStore`. */
function expressSessionRoutes(client, RedisStore = require('connect-redis').RedisStore) {
  return expressStyleRoutes(require('express-session'), { store: new RedisStore({ client }) });
}

/**
 * An app on express-session's API (`session` is express-session or ours),
 * `resave: false, saveUninitialized: false`. A pooled session is created by
 * its first /write, which also signs it in as passport would (`passport.user`).
 */
function expressStyleRoutes(session, storeOptions) {
  return (app) => {
    app.use(session({ ...storeOptions, secret: SECRET, resave: false, saveUninitialized: false }));
    app.get('/none', (req, res) => res.send('ok'));
    app.get('/read', (req, res) => res.send(String(req.session.n)));
    app.get('/write', (req, res) => {
      if (!req.session.passport) req.session.passport = { user: `user${signedIn++ % 20}` };
      req.session.n = (req.session.n || 0) + 1;
      res.send(String(req.session.n));
    });
    app.get('/passport', (req, res) => {
      const user = req.session.passport && req.session.passport.user;
      req.session.lastSeen = Date.now();
      res.send(String(user));
    });
  };
}

/**
 * express-session + connect-redis on an ioredis client over TLS (the same CA
 * as ours-tls). connect-redis 7: 8 and later speak node-redis's API only.
 */
async function expressSessionOnIoredisTls(redisPort) {
  const Redis = require('ioredis');
  const client = new Redis({ host: '127.0.0.1', port: redisPort, tls: { ca: fs.readFileSync(process.env.BENCH_TLS_CA) } });
  client.on('error', (err) => console.error('express-session-tls ioredis client:', err.message));
  await new Promise((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  });
  return expressSessionRoutes(client, require('connect-redis-7').default);
}

/** express-session + connect-redis 7 on ioredis.Cluster, on the same cluster as ours-cluster. */
async function expressSessionOnIoredisCluster() {
  const Redis = require('ioredis');
  const client = new Redis.Cluster(JSON.parse(process.env.BENCH_CLUSTER_NODES));
  client.on('error', (err) => console.error('express-session-cluster ioredis client:', err.message));
  await new Promise((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  });
  return expressSessionRoutes(client, require('connect-redis-7').default);
}

/** Any error reaches the client as a 500, so the load generator counts it as non-2xx. */
function errorHandler(err, req, res, next) {
  // eslint-disable-line no-unused-vars
  console.error(`http-app: ${req.path}: ${err.code || ''} ${err.message}`);
  res.status(500).send('error');
}

async function main() {
  const [config, port, redisPort] = process.argv.slice(2);
  if (!CONFIGS[config] || !port || !redisPort) {
    console.error(`usage: node bench/http-app.js <${Object.keys(CONFIGS).join('|')}> <port> <redisPort>`);
    process.exit(2);
  }
  const app = express();
  const mount = await CONFIGS[config](Number(redisPort));
  if (mount) mount(app);
  app.use(errorHandler);

  const server = app.listen(Number(port), '127.0.0.1', () => {
    if (process.send) process.send({ ready: true, pid: process.pid });
    else console.log(`${config} listening on http://127.0.0.1:${port}`);
  });
  server.keepAliveTimeout = 60000;

  // Never outlive the benchmark: the parent going away closes the IPC channel.
  process.on('disconnect', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}

main().catch((err) => {
  console.error(`http-app: ${err.stack || err}`);
  process.exit(1);
});
