// alt-session/express-session's typings, without @types/express-session (see tsconfig.json):
// `req.session` is this entry point's. Compiled (never run) by `tsc -p test/types/express-session`.

import session = require('alt-session/express-session');
import sessionDefault from 'alt-session/express-session';
import altSession = require('alt-session');
import express = require('express');
import http = require('node:http');

declare module 'alt-session/express-session' {
  interface SessionData {
    views: number;
    passport: { user?: string };
    flash: Record<string, string[]>;
  }
}

type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
function expectType<T>(_: T): void {}

// ---- every option -------------------------------------------------------------

const options: session.SessionOptions = {
  secret: ['new secret', 'old secret'],
  name: 'connect.sid',
  cookie: {
    maxAge: 30 * 24 * 3600 * 1000,
    secure: 'auto',
    httpOnly: true,
    sameSite: 'lax',
    domain: 'example.com',
    path: '/',
    partitioned: false,
    priority: 'high',
  },
  rolling: false,
  resave: false,
  saveUninitialized: false,
  unset: 'destroy',
  proxy: true,
  redis: { url: 'rediss://app:pw@redis.example.com:6380/0', tls: { ca: 'pem' }, commandTimeout: 250 },
  prefix: 'sess',
  tti: 3600,
  maxLifetime: 30 * 24 * 3600,
  maxSessionsPerUser: 20,
  maxValueBytes: 64 * 1024,
  maxFields: 200,
  userOf: (s) => s.passport && s.passport.user,
};
const mw: session.SessionMiddleware = session(options);
session({ secret: 'one', cookie: { maxAge: null, expires: new Date(Date.now() + 1000), sameSite: 'Strict' } });
session({ redis: { sentinel: { name: 'sessions', nodes: [{ host: '10.0.0.1' }] } } });
session({ redis: { cluster: { nodes: [{ host: '10.0.0.1', port: 7000 }] } } });
session({ userOf: (s) => ((s.views ?? 0) > 0 ? 42 : null) });
session({ userOf: (s) => s.isAdmin && s.userId }); // undeclared data: whatever other middleware stored
session();
const memory: session.SessionMiddleware = session.mock({ secret: 's' });
session.mock();
sessionDefault.mock({ secret: 's' });
const redisOptions: altSession.RedisOptions = { host: '127.0.0.1', port: 6379 };
session({ redis: redisOptions }); // the per-key API's Redis options, the same type

// @ts-expect-error unknown option (express-session's store: here redis, or mock())
session({ store: {} });
session({ genid: () => 'a-uuid-or-another-id-of-22-chars' });
// @ts-expect-error genid makes string ids
session({ genid: () => 42 });
// @ts-expect-error an option of the per-key API, not of this entry point
session({ session: { secret: 's' } });
// @ts-expect-error misspelt
session({ saveUnitialized: false });
// @ts-expect-error cookie.secure is a boolean or 'auto'
session({ cookie: { secure: 'yes' } });
// @ts-expect-error cookie.maxAge is milliseconds
session({ cookie: { maxAge: '1d' } });
// @ts-expect-error cookie options are express-session's names
session({ cookie: { maxage: 1000 } });
// @ts-expect-error unset is 'keep' or 'destroy'
session({ unset: 'delete' });
// @ts-expect-error secret is a string or strings
session({ secret: 42 });
// @ts-expect-error rolling is a boolean
session({ rolling: 'yes' });
// @ts-expect-error tti is seconds
session({ tti: '1h' });
// @ts-expect-error redis options are the per-key API's
session({ redis: { hostname: 'localhost' } });
// @ts-expect-error a user id is a string or a number
session({ userOf: (s) => ({ id: s.id }) });
// @ts-expect-error priority is low, medium or high
session({ cookie: { priority: 'urgent' } });

// ---- an Express app ---------------------------------------------------------------

const app = express();
app.use(mw);
app.use(memory);
const handler: express.RequestHandler = mw;
void handler;

app.get('/', (req, res, next) => {
  const s: session.RequestSession = req.session;
  const id: string = req.session.id;
  const sid: string = req.sessionID;
  const ended: boolean | undefined = req.sessionEnded;
  expectType<Equal<typeof req.session.views, number | undefined>>(true);
  req.session.views = (req.session.views ?? 0) + 1;
  const user: string | undefined = req.session.passport?.user;
  delete req.session.flash;
  const maxAge: number | null = req.session.cookie.maxAge;
  const expires: Date | null = req.session.cookie.expires;
  const original: number | null = req.session.cookie.originalMaxAge;
  const attributes = [req.session.cookie.httpOnly, req.session.cookie.path, req.session.cookie.domain, req.session.cookie.secure];
  req.session.cookie.maxAge = 7 * 24 * 3600 * 1000; // "remember me"
  req.session.cookie.expires = null;
  req.session.touch().resetMaxAge();
  req.session.save((err) => {
    if (err) return next(err);
    req.session.reload((err) => {
      if (err) return next(err);
      res.json({ s: s.views, id, sid, ended, user, maxAge, expires, original, attributes });
    });
  });
});

app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.passport = { user: 'ann' };
    req.session.save(() => res.redirect('/'));
  });
});

app.post('/logout', (req, res) => {
  req.session.destroy(() => res.redirect('/'));
});

app.post('/everywhere', async (req, res) => {
  const list: altSession.UserSession[] = await mw.sessions('ann');
  const ended: number = await mw.revoke('ann', { except: req.sessionID });
  await mw.revoke(42);
  mw.sessions('ann', (err, sessions) => void (err ? err.code : sessions?.length));
  mw.revoke('ann', (err, n) => void (err ?? n));
  res.json({ seen: list.map((s) => s.lastSeenAt), ended });
});

app.get('/wrong', (req) => {
  // @ts-expect-error data keys not declared in SessionData are not on req.session
  void req.session.cart;
  // @ts-expect-error views is declared a number
  req.session.views = 'many';
  // @ts-expect-error the id is the engine's
  req.session.id = 'mine';
  // @ts-expect-error secure is true, false or 'auto'
  req.session.cookie.secure = 'yes';
  // @ts-expect-error not the per-key API
  void req.session.get('views');
  // @ts-expect-error save's callback gets an error, not a value
  req.session.save((err: Error, value: string) => value);
});

async function shutdown(): Promise<void> {
  mw.on('error', (err) => void err.code);
  const ms: number = await mw.ping();
  const pending: number = mw.stats().pending;
  void [ms, pending];
  await mw.close();
  memory.close((err) => void err?.code);
  // @ts-expect-error except is a session id
  await mw.revoke('ann', { except: 5 });
}
void shutdown;

// Plain Node http works too: the request carries the same properties.
http.createServer((req, res) =>
  mw(req, res, () => {
    req.session.views = 1;
    res.end(req.sessionID);
  })
);
