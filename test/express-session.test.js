'use strict';

// alt-session/express-session as the middleware of the express-session
// ecosystem meets it: passport 0.7 (log-in and log-out regenerate the
// session; sessions() and revoke() through userOf), connect-flash, csurf in
// session mode, csrf-sync; express-session's own behaviours (counting, ids,
// cookie.maxAge, destroy, reload) and the same data read through the per-key
// API; and the lost update of two concurrent requests, which express-session
// on connect-redis shows and ours does not. Over real HTTP to Express 4 apps,
// on a real Redis and in memory.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const express = require('express');
const supertest = require('supertest');
const { Passport } = require('passport');
const { Strategy: LocalStrategy } = require('passport-local');
const flash = require('connect-flash');
const csurf = require('csurf');
const { csrfSync } = require('csrf-sync');
const expressSession = require('express-session');
const RedisStore = require('connect-redis').default;
const Redis = require('ioredis');
const session = require('../express-session');
const altSession = require('..');
const { useRedis } = require('./helpers/fixtures');
const { listen, CookieJar, cookiesNamed, unsignSid } = require('./helpers/http');

const SECRET = 'express-session entry';
const NAME = 'connect.sid'; // express-session's default cookie name, and the entry point's
const redis = useRedis();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise with its resolve function outside. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** `arrive()` resolves once `n` callers have arrived. */
function barrier(n) {
  let count = 0;
  const all = deferred();
  return () => {
    if (++count === n) all.resolve();
    return all.promise;
  };
}

/** An async route handler whose rejection goes to next(err) (Express 4 does not catch it). */
const handle = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);

/**
 * An Express 4 app over real HTTP: form bodies parsed, `middlewares` mounted in
 * order, then `routes(app)`, then an error handler answering the error's status
 * (403 for the CSRF modules) with `{ error }`. `close` also closes every `closing`.
 */
async function startApp(middlewares, routes, closing = []) {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  for (const middleware of middlewares) app.use(middleware);
  routes(app);
  app.use((err, req, res, next) => {
    res.status(err.status || err.statusCode || 500).json({ error: String(err.code || err.message) });
  });
  const { origin, close } = await listen(app);
  return {
    origin,
    close: async () => {
      await close();
      for (const thing of closing) await thing.close();
    },
  };
}

/** Runs `body(app)` with `startApp(...)`, closing the app (and `closing`) afterwards. */
async function withApp(middlewares, routes, body, closing = middlewares.filter((m) => typeof m.close === 'function')) {
  const app = await startApp(middlewares, routes, closing);
  try {
    return await body(app);
  } finally {
    await app.close();
  }
}

/**
 * A browser against `origin`: a cookie jar, requests through supertest (no
 * redirects followed). `cookie`: the wire value of a session cookie to start with.
 */
class Client {
  constructor(origin, cookie) {
    this.origin = origin;
    this.jar = new CookieJar();
    if (cookie !== undefined) this.jar.cookies.set(NAME, cookie);
  }

  /** The session cookie's wire value now (`s%3A<id>.<signature>`), or undefined. */
  get cookie() {
    return this.jar.get(NAME);
  }

  /** Resolves `{ status, body, headers, sessionCookie }`: sessionCookie is the parsed Set-Cookie of the session cookie, if any. */
  async send(method, path, { form, headers = {} } = {}) {
    let req = supertest(this.origin)[method](path);
    const cookie = this.jar.header();
    if (cookie !== undefined) req = req.set('Cookie', cookie);
    for (const [name, value] of Object.entries(headers)) req = req.set(name, value);
    if (form) req = req.type('form').send(form);
    const res = await req;
    const setCookies = res.headers['set-cookie'] || [];
    this.jar.store(setCookies);
    return { status: res.status, body: res.body, headers: res.headers, sessionCookie: cookiesNamed(setCookies, NAME)[0] };
  }

  get(path, options) {
    return this.send('get', path, options);
  }

  post(path, options) {
    return this.send('post', path, options);
  }
}

/** The session id inside a cookie's wire value (its signature checked). */
const idOf = (wireValue) => unsignSid(wireValue, SECRET);

for (const storeName of ['Redis', 'memory']) {
  /** Our express-session middleware on this store. */
  const ours = (options) => (storeName === 'Redis' ? session({ ...options, redis: redis.server.options }) : session.mock(options));
  const base = { secret: SECRET, resave: false, saveUninitialized: false };

  describe(`${storeName}: passport 0.7 + passport-local`, () => {
    const USERS = { ann: 'ann-pw', bob: 'bob-pw', cat: 'cat-pw' };

    /** An app with passport's local log-in; users are named `<name>-<storeName>` in the store (sessions per user). */
    function passportApp(mw) {
      const passport = new Passport();
      passport.use(new LocalStrategy((username, password, done) => done(null, USERS[username] === password ? { name: username } : false)));
      passport.serializeUser((user, done) => done(null, `${user.name}-${storeName}`));
      passport.deserializeUser((key, done) => done(null, { name: key.slice(0, key.lastIndexOf('-')) }));
      const routes = (app) => {
        app.get('/visit', (req, res) => {
          req.session.visited = true;
          res.json({ id: req.sessionID });
        });
        app.post('/login', passport.authenticate('local'), (req, res) => res.json({ user: req.user.name, id: req.sessionID }));
        app.get('/me', (req, res) =>
          res.json({ user: req.user ? req.user.name : null, authenticated: req.isAuthenticated(), id: req.sessionID, ended: req.sessionEnded })
        );
        app.get('/private', (req, res) => {
          if (!req.user) return res.status(401).json({ user: null });
          res.json({ user: req.user.name });
        });
        app.post('/logout', (req, res, next) => req.logout((err) => (err ? next(err) : res.json({ id: req.sessionID, user: req.user || null }))));
      };
      return [[mw, passport.initialize(), passport.session()], routes];
    }

    /** A client that visited (so it has a session cookie) and then signed in as `name`. */
    async function signedIn(origin, name) {
      const client = new Client(origin);
      await client.get('/visit');
      const r = await client.post('/login', { form: { username: name, password: USERS[name] } });
      assert.equal(r.status, 200);
      return client;
    }

    test('log-in changes the session id (the old one is not signed in), req.user on a protected route, log-out signs out with a new id', async () => {
      const mw = ours(base);
      const [middlewares, routes] = passportApp(mw);
      await withApp(middlewares, routes, async ({ origin }) => {
        const client = new Client(origin);
        const visit = await client.get('/visit');
        assert.equal(visit.status, 200);
        assert.ok(visit.sessionCookie, 'the visit stores a session and sends its cookie');
        const anonymousCookie = client.cookie;
        assert.equal(idOf(anonymousCookie), visit.body.id, 'the cookie carries req.sessionID');
        assert.equal((await client.get('/private')).status, 401);

        const wrong = await client.post('/login', { form: { username: 'ann', password: 'nope' } });
        assert.equal(wrong.status, 401, 'a wrong password is refused');

        const login = await client.post('/login', { form: { username: 'ann', password: 'ann-pw' } });
        assert.equal(login.status, 200);
        assert.equal(login.body.user, 'ann');
        assert.ok(login.sessionCookie, 'the log-in response sets the new cookie');
        const signedInCookie = client.cookie;
        assert.notEqual(signedInCookie, anonymousCookie, 'a new cookie at log-in');
        assert.notEqual(login.body.id, visit.body.id, 'a new session id at log-in (against fixation)');
        assert.equal(idOf(signedInCookie), login.body.id);

        const me = await client.get('/me');
        assert.deepEqual([me.body.user, me.body.authenticated, me.body.id], ['ann', true, login.body.id]);
        const priv = await client.get('/private');
        assert.deepEqual([priv.status, priv.body], [200, { user: 'ann' }]);

        const withOldId = await new Client(origin, anonymousCookie).get('/me');
        assert.equal(withOldId.body.user, null, 'the id from before the log-in is not signed in');
        assert.notEqual(withOldId.body.id, login.body.id);
        assert.equal((await new Client(origin, anonymousCookie).get('/private')).status, 401);

        const logout = await client.post('/logout');
        assert.equal(logout.status, 200);
        assert.equal(logout.body.user, null);
        assert.notEqual(logout.body.id, login.body.id, 'a new session id at log-out');
        assert.notEqual(client.cookie, signedInCookie, 'a new cookie at log-out');
        const after = await client.get('/me');
        assert.deepEqual([after.body.user, after.body.authenticated], [null, false]);
        assert.equal((await client.get('/private')).status, 401);
        const withSignedInId = await new Client(origin, signedInCookie).get('/me');
        assert.equal(withSignedInId.body.user, null, 'the signed-in id is dead after log-out');
      });
    });

    test('userOf: sessions(user) lists the signed-in sessions, revoke(user, { except }) and revoke(user) sign them out', async () => {
      const mw = ours({ ...base, userOf: (s) => s.passport && s.passport.user });
      const [middlewares, routes] = passportApp(mw);
      await withApp(middlewares, routes, async ({ origin }) => {
        const bob = `bob-${storeName}`;
        const cat = `cat-${storeName}`;
        assert.deepEqual(await mw.sessions(bob), [], 'nobody signed in yet');
        const clients = [await signedIn(origin, 'bob'), await signedIn(origin, 'bob'), await signedIn(origin, 'bob')];
        const other = await signedIn(origin, 'cat');
        const anonymous = new Client(origin);
        await anonymous.get('/visit');
        const ids = clients.map((c) => idOf(c.cookie));

        const listed = await mw.sessions(bob);
        assert.deepEqual(new Set(listed.map((s) => s.id)), new Set(ids), `bob's sessions: ${JSON.stringify(listed)}`);
        for (const entry of listed) {
          assert.equal(typeof entry.createdAt, 'number', JSON.stringify(entry));
          assert.equal(typeof entry.lastSeenAt, 'number', JSON.stringify(entry));
        }
        assert.deepEqual(
          (await mw.sessions(cat)).map((s) => s.id),
          [idOf(other.cookie)]
        );

        assert.equal(await mw.revoke(bob, { except: ids[0] }), 2, 'two sessions revoked');
        assert.deepEqual(
          (await mw.sessions(bob)).map((s) => s.id),
          [ids[0]]
        );
        assert.equal((await clients[0].get('/me')).body.user, 'bob', 'the excepted session stays signed in');
        for (const client of clients.slice(1)) {
          const me = await client.get('/me');
          assert.deepEqual([me.body.user, me.body.authenticated], [null, false], 'a revoked session is signed out');
          assert.equal(me.body.ended, true, 'req.sessionEnded: the cookie named a revoked session');
          assert.notEqual(me.body.id, ids[clients.indexOf(client)], 'a new session');
        }

        assert.equal(await mw.revoke(bob), 1);
        assert.deepEqual(await mw.sessions(bob), []);
        const me = await clients[0].get('/me');
        assert.equal(me.body.user, null, 'revoke(user) signs out the last one');
        assert.equal(me.body.ended, true);
        assert.equal((await other.get('/me')).body.user, 'cat', "another user's session is untouched");
        const stillAnonymous = await anonymous.get('/me');
        assert.equal(stillAnonymous.body.id, idOf(anonymous.cookie), 'an anonymous session is untouched');
        assert.ok(!stillAnonymous.body.ended, 'req.sessionEnded is not true for a live session');
      });
    });
  });

  describe(`${storeName}: connect-flash`, () => {
    test("req.flash('info', 'x') then a redirect: the next request reads ['x'], the one after []", async () => {
      await withApp(
        [ours(base), flash()],
        (app) => {
          app.get('/flash', (req, res) => {
            req.flash('info', 'x');
            res.redirect('/show');
          });
          app.get('/show', (req, res) => res.json(req.flash('info')));
        },
        async ({ origin }) => {
          const client = new Client(origin);
          const redirect = await client.get('/flash');
          assert.equal(redirect.status, 302);
          assert.equal(redirect.headers.location, '/show');
          assert.ok(redirect.sessionCookie, 'the flash stored a session');
          assert.deepEqual((await client.get('/show')).body, ['x']);
          assert.deepEqual((await client.get('/show')).body, []);
          assert.deepEqual((await new Client(origin).get('/show')).body, [], 'another browser has no flash');
        }
      );
    });
  });

  /** The CSRF scenario: GET /form gives a token; POST /submit accepts it (x-csrf-token), refuses none or a wrong one with 403. */
  async function csrfScenario(middlewares, routes) {
    await withApp(middlewares, routes, async ({ origin }) => {
      const client = new Client(origin);
      const form = await client.get('/form');
      assert.equal(form.status, 200);
      const { token } = form.body;
      assert.equal(typeof token, 'string');
      assert.ok(form.sessionCookie, 'the token is kept in a stored session');

      const ok = await client.post('/submit', { headers: { 'x-csrf-token': token } });
      assert.deepEqual([ok.status, ok.body], [200, { ok: true }]);
      const again = await client.post('/submit', { headers: { 'x-csrf-token': token }, form: { n: '2' } });
      assert.equal(again.status, 200, 'the token stays valid for the session');

      assert.equal((await client.post('/submit')).status, 403, 'no token');
      assert.equal((await client.post('/submit', { headers: { 'x-csrf-token': 'wrong' } })).status, 403, 'a wrong token');
      const stranger = new Client(origin);
      const strangerToken = (await stranger.get('/form')).body.token;
      assert.equal((await client.post('/submit', { headers: { 'x-csrf-token': strangerToken } })).status, 403, "another session's token");
      assert.equal((await new Client(origin).post('/submit', { headers: { 'x-csrf-token': token } })).status, 403, 'the token without its session');
      assert.equal((await client.post('/submit', { headers: { 'x-csrf-token': token } })).status, 200);
    });
  }

  describe(`${storeName}: csurf in session mode`, () => {
    test('a token from the form is accepted; none, a wrong one, or one of another session get 403', async () => {
      await csrfScenario([ours(base), csurf()], (app) => {
        app.get('/form', (req, res) => res.json({ token: req.csrfToken() }));
        app.post('/submit', (req, res) => res.json({ ok: true }));
      });
    });
  });

  describe(`${storeName}: csrf-sync`, () => {
    test('generateToken(req) is accepted by csrfSynchronisedProtection; none, a wrong one, or one of another session get 403', async () => {
      const { generateToken, csrfSynchronisedProtection } = csrfSync();
      await csrfScenario([ours(base)], (app) => {
        app.get('/form', (req, res) => res.json({ token: generateToken(req) }));
        app.post('/submit', csrfSynchronisedProtection, (req, res) => res.json({ ok: true }));
      });
    });
  });

  describe(`${storeName}: two concurrent requests change different properties`, () => {
    /**
     * Routes for the race: POST /init stores { a: 0, b: 0 }; POST /set/:key?delay=ms
     * waits until both racing requests have loaded the session, then `delay`
     * ms, then sets its key to 1; GET /read answers { a, b }.
     */
    function raceRoutes(state) {
      return (app) => {
        app.post('/init', (req, res) => {
          req.session.a = 0;
          req.session.b = 0;
          res.json({ id: req.sessionID });
        });
        app.post(
          '/set/:key',
          handle(async (req, res) => {
            await state.arrive();
            await sleep(Number(req.query.delay));
            req.session[req.params.key] = 1;
            res.json({ id: req.sessionID, a: req.session.a, b: req.session.b });
          })
        );
        app.get('/read', (req, res) => res.json({ a: req.session.a, b: req.session.b }));
      };
    }

    /** Runs the race on `mw` and resolves what the session holds afterwards. */
    async function race(mw, closing) {
      const state = { arrive: barrier(2) };
      return withApp(
        [mw],
        raceRoutes(state),
        async ({ origin }) => {
          const client = new Client(origin);
          const init = await client.post('/init');
          assert.ok(init.sessionCookie);
          assert.deepEqual((await client.get('/read')).body, { a: 0, b: 0 });
          const [a, b] = await Promise.all([
            new Client(origin, client.cookie).post('/set/a?delay=50'),
            new Client(origin, client.cookie).post('/set/b?delay=10'),
          ]);
          assert.equal(a.status, 200);
          assert.equal(b.status, 200);
          assert.deepEqual([a.body.id, b.body.id], [init.body.id, init.body.id], 'both requests ran on the same session');
          return (await client.get('/read')).body;
        },
        closing
      );
    }

    test('express-session + connect-redis loses one of the two changes', { skip: storeName === 'memory' && 'connect-redis runs on Redis only' }, async () => {
      const client = new Redis(redis.server.options);
      const mw = expressSession({ ...base, store: new RedisStore({ client, prefix: 'es-lost-update:' }) });
      const result = await race(mw, [{ close: () => client.quit() }]);
      assert.ok(
        (result.a === 1 && result.b === 0) || (result.a === 0 && result.b === 1),
        `express-session keeps only the last save's copy: got ${JSON.stringify(result)}`
      );
    });

    test('ours keeps both: { a: 1, b: 1 }', async () => {
      assert.deepEqual(await race(ours(base)), { a: 1, b: 1 });
    });
  });

  describe(`${storeName}: a request that loaded a session another request then ended`, () => {
    /**
     * POST /init stores { x: 1 }; POST /slow loads the session, says so
     * (`state.loaded`), waits for `state.release`, sets y = 2 and answers;
     * POST /destroy ends the session; GET /read answers { x, y, ended }.
     */
    function routes(state) {
      return (app) => {
        app.post('/init', (req, res) => {
          req.session.x = 1;
          res.json({ id: req.sessionID });
        });
        app.post(
          '/slow',
          handle(async (req, res) => {
            state.loaded.resolve();
            await state.release.promise;
            req.session.y = 2;
            res.json({ id: req.sessionID });
          })
        );
        app.post('/destroy', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
        app.get('/read', (req, res) => res.json({ id: req.sessionID, x: req.session.x, y: req.session.y, ended: req.sessionEnded === true }));
      };
    }

    /** Destroys the session while /slow holds it; resolves what each cookie reads afterwards. */
    async function destroyDuringSlow(mw, closing) {
      const state = { loaded: deferred(), release: deferred() };
      return withApp(
        [mw],
        routes(state),
        async ({ origin }) => {
          const client = new Client(origin);
          const { body: init } = await client.post('/init');
          const slowClient = new Client(origin, client.cookie);
          const slow = slowClient.post('/slow');
          await state.loaded.promise;
          assert.equal((await new Client(origin, client.cookie).post('/destroy')).status, 200);
          state.release.resolve();
          await slow;
          // The id the response's cookie carries (its body was written before the save moved it).
          const after = { id: idOf(slowClient.cookie) };
          return { init, after, oldCookie: (await new Client(origin, client.cookie).get('/read')).body, slowCookie: (await slowClient.get('/read')).body };
        },
        closing
      );
    }

    test('express-session + connect-redis writes the ended session back, under its old id', {
      skip: storeName === 'memory' && 'connect-redis runs on Redis only',
    }, async () => {
      const client = new Redis(redis.server.options);
      const mw = expressSession({ ...base, store: new RedisStore({ client, prefix: 'es-resurrect:' }) });
      const { init, after, oldCookie } = await destroyDuringSlow(mw, [{ close: () => client.quit() }]);
      assert.equal(after.id, init.id);
      assert.deepEqual({ x: oldCookie.x, y: oldCookie.y }, { x: 1, y: 2 }, 'the destroyed session lives again, with its old data');
    });

    test("ours never: the late save goes to a fresh session with only that request's change; the old id stays ended", async () => {
      const { init, after, oldCookie, slowCookie } = await destroyDuringSlow(ours(base));
      assert.notEqual(after.id, init.id, 'a fresh id');
      assert.deepEqual({ x: slowCookie.x, y: slowCookie.y, id: slowCookie.id }, { x: undefined, y: 2, id: after.id });
      assert.equal(oldCookie.ended, true, 'the old cookie names a session that ended');
      assert.equal(oldCookie.x, undefined);
      if (storeName === 'Redis') assert.equal(await redis.db.exists(`session:${init.id}`), false);
    });
  });

  describe(`${storeName}: express-session's behaviours`, () => {
    /** Routes of a plain express-session app; `state.reload` coordinates the reload() test. */
    function plainRoutes(state) {
      return (app) => {
        app.get('/views', (req, res) => {
          req.session.views = (req.session.views || 0) + 1;
          res.json({ views: req.session.views, sessionID: req.sessionID, id: req.session.id, ended: req.sessionEnded });
        });
        app.get('/peek', (req, res) => res.json({ views: req.session.views, fromPerKey: req.session.fromPerKey, id: req.sessionID }));
        app.get('/remember', (req, res) => {
          req.session.cookie.maxAge = 60000;
          req.session.remembered = true;
          res.json({ maxAge: req.session.cookie.maxAge, expires: req.session.cookie.expires });
        });
        app.post('/destroy', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ destroyed: true }))));
        app.post('/note', (req, res) => {
          req.session.note = req.query.text;
          res.json({ id: req.sessionID });
        });
        app.get(
          '/reload',
          handle(async (req, res, next) => {
            const before = req.session.note;
            state.reloadArrived.resolve();
            await state.reloadGo.promise;
            req.session.reload((err) => (err ? next(err) : res.json({ before, after: req.session.note, views: req.session.views })));
          })
        );
      };
    }

    const plainState = () => ({ reloadArrived: deferred(), reloadGo: deferred() });

    test('views count across requests; req.sessionID === req.session.id; no Expires without cookie.maxAge', async () => {
      await withApp([ours(base)], plainRoutes(plainState()), async ({ origin }) => {
        const client = new Client(origin);
        const first = await client.get('/views');
        assert.equal(first.body.views, 1);
        assert.equal(first.body.sessionID, first.body.id, 'req.sessionID === req.session.id');
        assert.equal(typeof first.body.id, 'string');
        assert.ok(first.sessionCookie, 'the first response sets the cookie');
        assert.equal(first.sessionCookie.attributes.expires, undefined, 'a browser-session cookie by default');
        assert.equal(first.sessionCookie.attributes.path, '/');
        assert.equal(first.sessionCookie.attributes.httponly, true);
        assert.equal(idOf(client.cookie), first.body.id);
        for (const n of [2, 3]) {
          const r = await client.get('/views');
          assert.deepEqual([r.body.views, r.body.sessionID, r.body.id], [n, first.body.id, first.body.id]);
        }
        assert.equal((await new Client(origin).get('/views')).body.views, 1, 'another browser counts on its own');
      });
    });

    test('req.session.cookie.maxAge = 60000 makes the Set-Cookie carry Expires, a minute ahead', async () => {
      await withApp([ours(base)], plainRoutes(plainState()), async ({ origin }) => {
        const client = new Client(origin);
        const started = Date.now();
        const r = await client.get('/remember');
        assert.equal(r.status, 200);
        assert.ok(r.body.maxAge > 59000 && r.body.maxAge <= 60000, `cookie.maxAge read back: ${r.body.maxAge}`);
        assert.ok(r.sessionCookie, 'a Set-Cookie');
        const { expires } = r.sessionCookie.attributes;
        assert.equal(typeof expires, 'string', `Expires in ${JSON.stringify(r.sessionCookie)}`);
        const at = Date.parse(expires);
        assert.ok(at >= started + 55000 && at <= Date.now() + 61000, `Expires ${expires}, a minute after ${new Date(started).toUTCString()}`);
        assert.equal((await client.get('/peek')).body.id, idOf(client.cookie), 'the session goes on');
      });
    });

    test('destroy(): the next request gets a new, empty session', async () => {
      await withApp([ours(base)], plainRoutes(plainState()), async ({ origin }) => {
        const client = new Client(origin);
        await client.get('/views');
        const second = await client.get('/views');
        assert.equal(second.body.views, 2);
        const oldCookie = client.cookie;
        assert.equal((await client.post('/destroy')).status, 200);
        const next = await new Client(origin, oldCookie).get('/views');
        assert.equal(next.body.views, 1, 'the data is gone');
        assert.notEqual(next.body.id, second.body.id, 'a new session id');
        assert.equal(next.body.ended, true, 'req.sessionEnded: the cookie named a destroyed session');
        assert.ok(next.sessionCookie, 'a new cookie');
        assert.equal(idOf(next.sessionCookie.value), next.body.id);
      });
    });

    test('reload() picks up what another request saved meanwhile', async () => {
      const state = plainState();
      await withApp([ours(base)], plainRoutes(state), async ({ origin }) => {
        const client = new Client(origin);
        await client.get('/views');
        const reloading = new Client(origin, client.cookie).get('/reload');
        await state.reloadArrived.promise;
        const note = await new Client(origin, client.cookie).post('/note?text=saved%20meanwhile');
        assert.equal(note.status, 200);
        state.reloadGo.resolve();
        const r = await reloading;
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, { after: 'saved meanwhile', views: 1 }, 'before is undefined (not sent), after is the saved note');
        assert.equal((await client.get('/peek')).body.views, 1);
      });
    });

    test('the per-key API (alt-session) on the same Redis, secret, name and prefix reads and writes the same session', {
      skip: storeName === 'memory' && 'two middlewares share a session through Redis only',
    }, async () => {
      const prefix = 'es-entry';
      const perKey = altSession({ redis: redis.server.options, session: { secret: SECRET, name: NAME, prefix } });
      await withApp([ours({ ...base, prefix })], plainRoutes(plainState()), async ({ origin }) => {
        const client = new Client(origin);
        await client.get('/views');
        const second = await client.get('/views');
        assert.equal(second.body.views, 2);
        assert.equal(await redis.db.exists(`${prefix}:${second.body.id}`), true, `the hash ${prefix}:<id>`);
        await withApp(
          [perKey],
          (app) => {
            app.get(
              '/get',
              handle(async (req, res) => res.json({ views: await req.session.get('views'), id: req.session.id }))
            );
            app.get(
              '/set',
              handle(async (req, res) => {
                await req.session.set('fromPerKey', { n: 7 });
                res.json({ id: req.session.id });
              })
            );
          },
          async (perKeyApp) => {
            const perKeyClient = new Client(perKeyApp.origin, client.cookie);
            const got = await perKeyClient.get('/get');
            assert.deepEqual(got.body, { views: 2, id: second.body.id }, "req.session.get('views') sees the count");
            assert.equal((await perKeyClient.get('/set')).body.id, second.body.id);
            assert.equal(perKeyClient.cookie, client.cookie, 'the same cookie throughout');
          }
        );
        const peek = await client.get('/peek');
        assert.deepEqual(peek.body, { views: 2, fromPerKey: { n: 7 }, id: second.body.id }, 'the entry point sees the per-key write');
      });
    });
  });
}

describe('options', () => {
  test('unknown or wrong options are refused at start-up with ERR_SESSION_CONFIG, named as the app wrote them', () => {
    const refused = (options, message) => assert.throws(() => session.mock(options), { code: 'ERR_SESSION_CONFIG', message });
    refused({ secret: SECRET, cookie: { maxage: 60000 } }, /unknown option cookie\.maxage: did you mean cookie\.maxAge\?/);
    refused({ secret: SECRET, cookie: { path: 'app' } }, /^cookie\.path must start with \//);
    refused({ secret: SECRET, store: {} }, /store: sessions are stored on Redis/);
    refused({ secret: SECRET, resave: 'no' }, /resave must be a boolean/);
    refused({ secret: SECRET, userOf: 'passport.user' }, /userOf must be a function/);
    refused({ secret: SECRET, genid: () => 'x', userOf: () => null }, /genid and userOf cannot go together/);
    refused({ secret: SECRET, cookie: { expires: new Date(Number.NaN) } }, /cookie\.expires must be a valid Date/);
  });
});
