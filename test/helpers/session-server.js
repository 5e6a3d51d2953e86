'use strict';

// An Express app around session middleware, served over real HTTP, whose
// route runs a function the test gives it: `await server.run(fn, { jar })`
// sends one request; its handler calls `fn(req.session, req, res)` and the
// test gets back, in-process, the live `req.session`, what `fn` returned or
// threw, and the HTTP response (status, Set-Cookie lines).

const cookieParser = require('cookie-parser');
const altSession = require('../..');
const { listen, request } = require('./http');
const { connectionOptions } = require('../../__test__/servers/redis');

/**
 * The two ways to give our middleware its secret, as `(secret, sessionOptions)`
 * -> options for `startSessionApp`: cookie-parser mounted first (the
 * original's setup: req.signedCookies.sid and req.secret), or `session.secret`.
 */
const MODES = {
  'cookie-parser(secret)': (secret, session = {}) => ({ cookieParserSecret: secret, session }),
  'session.secret': (secret, session = {}) => ({ session: { ...session, secret } }),
};

/**
 * @param express        `require('express')` or `require('express5')`
 * @param middlewares    mounted in order, e.g. `[cookieParser(secret), mw]`
 */
async function sessionServer(express, middlewares) {
  const app = express();
  for (const middleware of middlewares) app.use(middleware);

  const jobs = new Map();
  let counter = 0;

  app.all('/run/:job', (req, res) => {
    const job = jobs.get(req.params.job);
    job.session = req.session;
    // run() waits for this too: a job that sent its response early (res.end
    // in fn) is still running when the client has the response.
    job.done = Promise.resolve()
      .then(() => job.fn(req.session, req, res))
      .then(
        (value) => (job.value = value),
        (error) => (job.error = error)
      )
      .finally(() => {
        if (!res.headersSent) res.status(job.error ? 500 : 200).end();
        else if (!res.writableEnded) res.end();
      });
  });
  // An error a middleware passed to next(): reported as 500 with its code.
  app.use((err, req, res, next) => {
    // eslint-disable-line no-unused-vars
    const job = jobs.get(req.path.split('/')[2]); // path /run/<job>
    if (job) job.middlewareError = err;
    res.status(500).end(String(err.code || err.message));
  });

  const { origin, close } = await listen(app);

  /**
   * One request running `fn` server-side. `jar` supplies and receives cookies;
   * `cookie` (a raw Cookie header) overrides the jar's.
   */
  async function run(fn = () => {}, { jar, cookie } = {}) {
    const id = String(++counter);
    const job = { fn };
    jobs.set(id, job);
    const header = cookie !== undefined ? cookie : jar && jar.header();
    const response = await request(origin, `/run/${id}`, { cookie: header });
    await job.done;
    jobs.delete(id);
    if (jar) jar.store(response.setCookies);
    return { ...response, session: job.session, value: job.value, error: job.error, middlewareError: job.middlewareError };
  }

  return { origin, run, close };
}

/**
 * Our middleware in an Express app over real HTTP: on the Redis `redis` (a
 * server of testRedis / startRedis, or our `redis` options as they are), or
 * on the in-memory store with `mock: true`.
 */
async function startSessionApp(express, { redis, session = {}, cookieParserSecret, mock = false }) {
  // Never the default localhost:6379: that Redis is not the tests' to use.
  if (!redis && !mock) throw new Error('startSessionApp needs the test Redis, or mock: true');
  if (redis && !(redis.port || redis.url || redis.sentinel || redis.cluster)) throw new Error('startSessionApp: the redis options name no server');
  const options = { session };
  if (redis) options.redis = typeof redis.stop === 'function' ? connectionOptions(redis) : redis;
  const mw = mock ? altSession.mock(options) : altSession(options);
  const server = await sessionServer(express, cookieParserSecret ? [cookieParser(cookieParserSecret), mw] : [mw]);
  return {
    mw,
    run: server.run,
    origin: server.origin,
    close: async () => {
      await server.close();
      await mw.close();
    },
  };
}

/** Runs `body(app)` with `startSessionApp(express, options)`, closing the app afterwards. */
async function withSessionApp(express, options, body) {
  const app = await startSessionApp(express, options);
  try {
    return await body(app);
  } finally {
    await app.close();
  }
}

/**
 * Runs a middleware by hand on a bare request with `cookie` (no server, as a
 * job or a test of the middleware alone would): resolves `{ err, session }`,
 * what it passed to next() and the `req.session` it set.
 */
function passThrough(mw, cookie) {
  const req = { headers: cookie ? { cookie } : {}, socket: {}, secure: false };
  const headers = {};
  const res = { getHeader: (name) => headers[name], setHeader: (name, value) => (headers[name] = value), headersSent: false };
  return new Promise((resolve) => mw(req, res, (err) => resolve({ err, session: req.session })));
}

module.exports = { MODES, sessionServer, startSessionApp, withSessionApp, passThrough };
