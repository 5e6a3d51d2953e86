// Everything installed side by side (see tsconfig.json): express-session's typings, and
// packages whose typings import them (csrf-sync, connect-redis), beside both of alt-session's
// entry points, with skipLibCheck false. Before, this failed with TS2717 (both typings declared
// Express's `req.session`); now `req.session` is express-session's type and nothing clashes.
// Compiled (never run) by `tsc -p test/types/together`.

import expressSession = require('express-session');
import session = require('alt-session/express-session');
import altSession = require('alt-session');
import express = require('express');
import { csrfSync } from 'csrf-sync';
import RedisStore from 'connect-redis';

// Keys declared for alt-session/express-session type express-session's `req.session` too...
declare module 'alt-session/express-session' {
  interface SessionData {
    views: number;
  }
}
// ...and so do declarations written for express-session (an app migrating keeps them).
declare module 'express-session' {
  interface SessionData {
    returnTo: string;
  }
}
// The per-key API's typed keys, unaffected.
declare module 'alt-session' {
  interface SessionData {
    visits: number;
  }
}

type Equal<A, B> = (<G>() => G extends A ? 1 : 2) extends <G>() => G extends B ? 1 : 2 ? true : false;
function expectType<T>(_: T): void {}

const app = express();
const mw = session({ secret: 's', resave: false, saveUninitialized: false, userOf: (s) => s.passport && s.passport.user });
app.use(mw);
const { csrfSynchronisedProtection } = csrfSync();
app.use(csrfSynchronisedProtection);
void RedisStore;
void expressSession; // express-session's own middleware is not mounted: its typings are what is tested

app.get('/', (req, res, next) => {
  expectType<Equal<typeof req.session.views, number | undefined>>(true);
  expectType<Equal<typeof req.session.returnTo, string | undefined>>(true);
  req.session.views = (req.session.views ?? 0) + 1;
  req.session.csrfToken = undefined; // csrf-sync's declaration
  const sid: string = req.sessionID;
  const ended: boolean | undefined = req.sessionEnded;
  req.session.save((err) => {
    if (err) return next(err);
    res.json({ sid, ended });
  });
});

// The per-key middleware mounts as before, its typed keys hold, but `req.session` in a route
// is express-session's type here (@types/express-session declares it; two packages cannot
// both): a per-key route names the session's type.
const perKey = altSession.mock();
app.use(perKey);
app.get('/per-key', async (req, res) => {
  // @ts-expect-error req.session is express-session's type where its typings are in the program
  await req.session.get('visits');
  const session = req.session as unknown as altSession.Session;
  const visits = await session.get('visits');
  expectType<Equal<typeof visits, number | null>>(true);
  await session.set('visits', (visits ?? 0) + 1);
  res.json({ visits });
});
