// Compiled (never run) by `npx tsc -p test/types`: the typings accept correct
// usage and reject wrong usage (each `@ts-expect-error` must see an error).

import altSession = require('../..');
import altSessionDefault from '../..';
import express = require('express');
import cookieParser = require('cookie-parser');

// ---- creating the middleware: every option --------------------------------

const managed: altSession.RedisOptions = {
  url: 'rediss://app:secret@redis.example.com:6380/0',
  tls: { ca: Buffer.from('-----BEGIN CERTIFICATE-----'), cert: 'pem', key: 'pem', servername: 'redis.example.com', rejectUnauthorized: true },
};
void managed;
const highlyAvailable: altSession.RedisOptions = {
  sentinel: { name: 'sessions', nodes: [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2' }], password: 'sentinel-pw' },
  password: 'primary-pw',
};
void highlyAvailable;
const sharded: altSession.RedisOptions = { cluster: { nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2' }], password: 'pw' } };
void sharded;

const options: altSession.Options = {
  redis: {
    host: '127.0.0.1',
    port: 6390,
    auth_pass: 'optional',
    username: 'app',
    connectTimeout: 500,
    commandTimeout: 250,
    waitReplicas: 1,
    waitTimeout: 100,
    tls: false,
  },
  session: {
    dbIndex: 0,
    tti: 300,
    prefix: 'sess',
    secure: 'auto',
    domain: 'example.com',
    secret: ['new secret', 'old secret'],
    name: 'sid',
    path: '/',
    sameSite: 'Strict',
    httpOnly: true,
    maxValueBytes: 64 * 1024,
    maxSessionsPerUser: 20,
    awaitTouch: false,
  },
};

const mw: altSession.Middleware = altSession(options);
altSession({ redis: { port: '6379', pass: 'x' } });
altSession({ redis: { password: 'x' } });
altSession({ redis: { url: 'redis://user:pw@127.0.0.1:6379/2' }, session: { secret: 's' } });
altSession({ session: { secure: true, sameSite: 'none' } });
altSession({ session: { sameSite: false, secure: false, secret: 'one' } });
altSession();
const memory: altSession.Middleware = altSession.mock({ session: { secret: 'x', tti: 60 } });
altSession.mock();
altSessionDefault.mock({ session: { sameSite: 'lax' } });

// ---- an Express app --------------------------------------------------------

const app = express();
app.use(cookieParser('secret')); // the original's set-up: the cookie-parser secret signs
app.use(mw);
app.use(memory);

interface User {
  name: string;
  roles: string[];
}

// Callbacks, as the original's API.
app.get('/callbacks', (req, res, next) => {
  const id: string = req.session.id;
  const isNew: boolean = req.session.isNew;
  req.session.set('myKey', 'myValue', (err) => {
    if (err) return next(err);
    req.session.get<string>('myKey', (err, value) => {
      if (err) return next(err);
      const text: string | null | undefined = value;
      req.session.mget(['myKey1', 'myKey2'], (err, session) => {
        if (err) return next(err);
        const a: unknown = session?.myKey1;
        req.session.remove('myKey', (err) => {
          if (err) return next(err);
          req.session.remove(['myKey1', 'myKey2'], (err) => {
            if (err) return next(err);
            req.session.invalidate((err) => {
              if (err) return next(err);
              res.json({ id, isNew, text, a });
            });
          });
        });
      });
    });
  });
});

// Promises.
app.get('/await', async (req, res, next) => {
  try {
    await req.session.set('user', { name: 'ada', roles: ['admin'] });
    const user = await req.session.get<User>('user');
    const name: string | undefined = user?.name;
    const many = await req.session.mget<number, 'a' | 'b'>(['a', 'b']);
    const a: number | null = many.a;
    const one = await req.session.mget('single');
    const all = await req.session.getAll();
    const allUsers: Record<string, User> = await req.session.getAll<User>();
    await req.session.mset({ a: 1, b: 'two', c: undefined });
    const prefs: User = { name: 'x', roles: [] };
    await req.session.mset(prefs); // an interface-typed object is fine
    await req.session.remove(['a', 'b']);
    await req.session.touch();
    req.session.set('fire', 'and forget'); // no callback, no await: allowed
    res.json({ name, a, one, all, allUsers });
  } catch (err) {
    const e = err as altSession.SessionError;
    if (e.code === 'ERR_SESSION_TOO_LARGE') return res.status(413).end();
    next(err);
  }
});

app.post('/logout', async (req, res) => {
  await req.session.invalidate();
  res.redirect('/');
});

// Sessions per user.
app.post('/login', async (req, res) => {
  await req.session.login('ann', { meta: { device: 'laptop' } });
  await req.session.login(42);
  req.session.login('ann', (err) => void err);
  const user: string | null = req.session.userId;
  const list: altSession.UserSession[] = await mw.sessions(user ?? 'ann');
  const seen: number = list[0].lastSeenAt + list[0].createdAt;
  const ended: number = await mw.revoke('ann', { except: req.session.id });
  await mw.revoke(42);
  mw.sessions('ann', (err, sessions) => void (err ? err.code : sessions?.length));
  await req.session.logout();
  res.json({ seen, ended });
});

// Error codes are a closed union.
function describe(err: altSession.SessionError): string {
  switch (err.code) {
    case 'ERR_SESSION_CONFIG':
    case 'ERR_SESSION_ARGUMENT':
    case 'ERR_SESSION_TOO_LARGE':
    case 'ERR_SESSION_SECRET':
    case 'ERR_SESSION_CONNECTION':
    case 'ERR_SESSION_TIMEOUT':
    case 'ERR_SESSION_STORE':
    case 'ERR_SESSION_AUTH':
    case 'ERR_SESSION_TLS':
    case 'ERR_SESSION_SENTINEL':
    case 'ERR_SESSION_NOT_REPLICATED':
    case 'ERR_SESSION_NATIVE':
    case 'ERR_SESSION_STORE_FULL':
    case 'ERR_SESSION_CONFLICT':
    case 'ERR_SESSION_HEADERS_SENT':
    case 'ERR_SESSION_CLOSED':
      return err.message;
  }
}
describe(new Error('x') as altSession.SessionError);

// The session type can be named.
function countVisits(session: altSession.Session): Promise<number> {
  return session.get<number>('visits').then((n) => (n ?? 0) + 1);
}
void countVisits;

// ---- operating it ------------------------------------------------------------

async function health(): Promise<number> {
  mw.on('connect', ({ host, port }) => console.log(host, port + 1));
  mw.on('disconnect', ({ reason, code }) => console.log(reason, code));
  mw.once('error', (err) => console.log(err.code));
  // @ts-expect-error a connect's port is a number
  mw.on('connect', ({ port }: { port: string }) => port);
  mw.on('failover', ({ from, to }) => console.log(from.port, to.host));
  const stats = mw.stats();
  const p99: number | undefined = stats.operations.get?.latency.p99;
  const timeouts: number | undefined = stats.errors.ERR_SESSION_TIMEOUT;
  console.log(p99, timeouts, stats.pending, stats.connections[0]?.state === 'connected');
  // @ts-expect-error errors are counted by code
  void stats.errors.ERR_NO_SUCH_CODE;
  return mw.ping();
}
void health;

// ---- shutdown ----------------------------------------------------------------

async function shutdown(): Promise<void> {
  await mw.close();
  memory.close((err) => {
    if (err) console.error(err.code);
  });
}
void shutdown;

// Plain Node http works too.
import http = require('node:http');
http.createServer((req, res) => mw(req, res, () => res.end()));

// ---- wrong usage must not compile --------------------------------------------

app.get('/wrong', async (req) => {
  // @ts-expect-error: keys are strings
  await req.session.set(5, 'value');
  // @ts-expect-error: keys are strings
  await req.session.get(1);
  // @ts-expect-error: mget takes keys, not an object
  await req.session.mget({ a: 1 });
  // @ts-expect-error: mset takes an object of { key: value }
  await req.session.mset(['a', 1]);
  // @ts-expect-error: mset takes an object of { key: value }
  await req.session.mset('a');
  // @ts-expect-error: remove takes a key or keys
  await req.session.remove(3);
  // @ts-expect-error: no such method
  await req.session.destroy();
  // @ts-expect-error: id is read-only
  req.session.id = 'other';
  // @ts-expect-error: isNew is read-only
  req.session.isNew = false;
  // @ts-expect-error: userId is read-only (login() sets it)
  req.session.userId = 'ann';
  // @ts-expect-error: a user id is a string or a number
  await req.session.login({ id: 1 });
  // @ts-expect-error: except is a session id
  await mw.revoke('ann', { except: 5 });
  // @ts-expect-error: a missing key resolves null, so the value may be null
  const n: number = await req.session.get<number>('n');
  void n;
  // @ts-expect-error: callbacks get an error first
  req.session.get('k', (value: string) => value);
});

// @ts-expect-error: secure is a boolean or 'auto'
altSession({ session: { secure: 'yes' } });
// @ts-expect-error: tti is a number of seconds
altSession({ session: { tti: '300' } });
// @ts-expect-error: sameSite is lax, strict, none or a boolean
altSession({ session: { sameSite: 'sometimes' } });
// @ts-expect-error: secret is a string or an array of strings
altSession({ session: { secret: 42 } });
// @ts-expect-error: unknown option
altSession({ session: { rolling: true } });
// @ts-expect-error: a sentinel group needs the primary's name
altSession({ redis: { sentinel: { nodes: [{ host: '10.0.0.1' }] } } });
// @ts-expect-error: a cluster's nodes are { host, port } objects
altSession({ redis: { cluster: { nodes: ['10.0.0.1:6379'] } } });
// @ts-expect-error: timeouts are numbers of milliseconds
altSession({ redis: { commandTimeout: '1s' } });
// @ts-expect-error: port is a number or a string
altSession({ redis: { port: true } });
// @ts-expect-error: options is an object
altSession('redis://localhost');
// @ts-expect-error: close takes a callback
mw.close('now');
// @ts-expect-error: no such function
altSession.store();

// incr and regenerate
async function counters(session: altSession.Session): Promise<number> {
  await session.regenerate();
  session.regenerate((err) => void err);
  session.incr('n', (err, value) => void (err ?? value));
  session.incr('n', 2, (err, value) => void (err ?? value));
  // @ts-expect-error the increment is a number
  session.incr('n', '2');
  return session.incr('visits');
}
void counters;

// The documented codes are exactly the ones the engine declares (src/error.rs, exported
// to binding.d.ts as `ErrorCode`): a code added on one side and not the other fails here.
import type { ErrorCode } from '../../binding';
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const codesDeclaredOnce: Same<altSession.SessionErrorCode, `${ErrorCode}`> = true;
void codesDeclaredOnce;

// Lazy sessions, strict refresh errors, 0.0.1 ids off after a rollout.
const adopted: altSession.Options = { session: { lazy: true, legacyIds: false, refreshErrors: 'next' } };
void adopted;
// @ts-expect-error refreshErrors is 'ignore' or 'next'
const badRefresh: altSession.Options = { session: { refreshErrors: 'throw' } };
void badRefresh;

// Persistent cookies: every session's, or one remembered at login.
const remembered: altSession.Options = { session: { persistent: true } };
void remembered;
async function rememberMe(session: altSession.Session): Promise<void> {
  await session.login('ann', { remember: true, meta: { device: 'laptop' } });
  // @ts-expect-error remember is a boolean
  await session.login('ann', { remember: 'yes' });
}
void rememberMe;
