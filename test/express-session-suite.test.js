'use strict';

// express-session's own test suite (expressjs/session, test/session.js at 1.19.0, commit 2c9512f),
// ported from mocha to node:test and run against our entry point `alt-session/express-session`.
// The original is Copyright (c) 2010 Sencha Inc., 2011 TJ Holowaychuk, 2014-2015 Douglas
// Christopher Wilson, under the MIT licence: https://github.com/expressjs/session/blob/master/LICENSE
//
// Which middleware runs is chosen once, here (IMPL): by default ours,
// `require('../express-session').mock(options)` (in memory); with SUITE_IMPL=express-session the
// real express-session with its MemoryStore, which validates the port (every test passes on it):
//
//   node --test --test-reporter=spec test/express-session-suite.test.js
//   SUITE_IMPL=express-session node --test --test-reporter=spec test/express-session-suite.test.js
//   SUITE_IMPL=express-session SUITE_PROBE=http node --test test/express-session-suite.test.js
//
// What changed in the port, beside the syntax (mocha's `function (done)` and `this.server` to
// node:test's `(t, done)` and closures):
// - `store: new session.MemoryStore()` becomes our session.mock(...), which has no store object.
//   Where the original looks into the store (store.length/all/get/load/clear), ours is asked over
//   HTTP instead, through the same middleware (the 'http' probe below: a request carrying the
//   session's signed cookie and an X-Suite-Probe header answers with its req.sessionID, or destroys
//   the session); SUITE_PROBE=http runs express-session that way too, to validate the probe.
// - Tests whose subject is a store implementation's internals (custom Store subclasses, store
//   methods stubbed to fail, the Store's events, the exported constructors, records written into the
//   store directly, the count of Store#set calls on a returning session) run on express-session
//   only and are skipped on ours with `store internal: <why>`; those that check what ours does
//   differently on purpose, with `deliberate difference: <which>`.
// - The two secret-rotation tests that share one store between two middlewares (ours cannot: each
//   session.mock() has its own memory) check the same with one middleware under the 'http' probe:
//   the cookie's signature (first secret), and a cookie signed again with the second secret.
// - `key: 'sessid'` (express-session's deprecated alias of `name`) is `name: 'sessid'` where it only
//   names the cookie; the `key option` tests keep `key`.
// - `new Cookie().serialize('previous', 'cookieValue')` (express-session's private Cookie class) is the
//   header it makes, written out: 'previous=cookieValue; Path=/; HttpOnly'.
// - The TLS certificate of the `.secure` tests is made at test time (the original's gencert.sh).

const afterAll = require('after');
const assert = require('node:assert');
const cookieParser = require('cookie-parser');
const cookieSignature = require('cookie-signature');
const crypto = require('node:crypto');
const express = require('express');
const http = require('node:http');
const https = require('node:https');
const request = require('supertest');
const { describe, it: nodeIt, before, after } = require('node:test');
const utils = require('./helpers/express-session-suite-support');

/** The implementation under test (see the header). */
const IMPL = utils.implementation();

const min = 60 * 1000;

/**
 * node:test's `it` with mocha's habits: a test that never calls done() fails after 5 s (mocha's
 * timeout is 2 s; node:test has none), and the process is kept alive meanwhile (without it,
 * node:test ends the file once nothing is pending, and cancels every test after that one).
 */
function it(name, options, fn) {
  if (typeof options === 'function') [options, fn] = [{}, options];
  const timeout = 5000;
  const test =
    fn.length < 2
      ? fn
      : (t, done) => {
          const keepAlive = setTimeout(() => {}, timeout + 1000);
          t.after(() => clearTimeout(keepAlive));
          fn(t, done);
        };
  return nodeIt(name, { timeout, ...options }, test);
}

/**
 * Mocha's `before(function () { this.server = createServer(...) })`: one server for the tests
 * of a describe, made by the first test that asks for it, so that options the middleware refuses
 * fail each test (from a node:test hook they would cancel them).
 */
function sharedServer(make) {
  let server;
  return () => {
    if (!server) server = make();
    return server;
  };
}

/** Skips a test on ours only: its subject is the store implementation's internals. */
function storeInternal(why) {
  return { skip: IMPL.ours ? `store internal: ${why}` : false };
}

/** Skips a test on ours only: it checks what ours does differently on purpose. */
function deliberate(why) {
  return { skip: IMPL.ours ? `deliberate difference: ${why}` : false };
}

const NO_STORE_CLASSES = 'exports and subclasses express-session Store (ours has no Store API)';
const STUBS_STORE = 'replaces a method of the Store object (ours has no Store object)';
const COUNTS_SETS = 'counts Store#set calls on a returning session (ours has no Store; a save writes only what changed)';
const READS_EXPIRES = "reads the cookie.expires the Store#set recorded (ours stores no cookie: the key's TTL)";
const OWN_MESSAGES = "ours' own error messages (the error, or the throw, is there; only its text differs)";
/** Why ours holds back the response's head until its save is done. */
const HOLDS_RESPONSE =
  'the response waits whole for the save (express-session sends its head first), so that a save that moves the session to a new id (its user changed, or it ended) still sends that cookie: a second res.end() is ignored';
/** Where ours reads the session cookie from. */
const COOKIE_HEADER =
  "the cookie is read from the Cookie header (with a secret of its own) or from cookie-parser's req.signedCookies (without one), not from req.cookies or req.signedCookies filled after the header was replaced";
const NO_GENID =
  "genid's ids are held to the engine's rules (22 to 128 characters of base64url, as a cookie's id must be): 'apple', '/foo' and '%' are refused (ERR_SESSION_ARGUMENT)";
const WHOLE_SECONDS = 'the store expires sessions in whole seconds: cookie.maxAge 5 ms keeps the session 1 s';

describe(`session() [${IMPL.name}]`, () => {
  it('should export constructors', storeInternal(NO_STORE_CLASSES), () => {
    assert.strictEqual(typeof IMPL.session.Session, 'function');
    assert.strictEqual(typeof IMPL.session.Store, 'function');
    assert.strictEqual(typeof IMPL.session.MemoryStore, 'function');
  });

  it('should do nothing if req.session exists', (t, done) => {
    function setup(req) {
      req.session = {};
    }

    request(createServer(setup)).get('/').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
  });

  it('should error without secret', (t, done) => {
    request(createServer({ secret: undefined }))
      .get('/')
      .expect(500, /secret.*required/, done);
  });

  it('should get secret from req.secret', (t, done) => {
    function setup(req) {
      req.secret = 'keyboard cat';
    }

    request(createServer(setup, { secret: undefined }))
      .get('/')
      .expect(200, '', done);
  });

  it('should create a new session', (t, done) => {
    const store = IMPL.createStore();
    const server = createServer({ store: store }, (req, res) => {
      req.session.active = true;
      res.end('session active');
    });

    request(server)
      .get('/')
      .expect(shouldSetCookie('connect.sid'))
      .expect(200, 'session active', (err, res) => {
        if (err) return done(err);
        storeLength(server, store, [sid(res)], (err, len) => {
          if (err) return done(err);
          assert.strictEqual(len, 1);
          done();
        });
      });
  });

  it('should load session from cookie sid', (t, done) => {
    let count = 0;
    const server = createServer(null, (req, res) => {
      req.session.num = req.session.num || ++count;
      res.end(`session ${req.session.num}`);
    });

    request(server)
      .get('/')
      .expect(shouldSetCookie('connect.sid'))
      .expect(200, 'session 1', (err, res) => {
        if (err) return done(err);
        request(server).get('/').set('Cookie', cookie(res)).expect(200, 'session 1', done);
      });
  });

  it('should pass session fetch error', storeInternal(STUBS_STORE), (t, done) => {
    const store = IMPL.createStore();
    const server = createServer({ store: store }, (req, res) => {
      res.end('hello, world');
    });

    store.get = function destroy(sid, callback) {
      callback(new Error('boom!'));
    };

    request(server)
      .get('/')
      .expect(shouldSetCookie('connect.sid'))
      .expect(200, 'hello, world', (err, res) => {
        if (err) return done(err);
        request(server).get('/').set('Cookie', cookie(res)).expect(500, 'boom!', done);
      });
  });

  it('should treat ENOENT session fetch error as not found', storeInternal(STUBS_STORE), (t, done) => {
    let count = 0;
    const store = IMPL.createStore();
    const server = createServer({ store: store }, (req, res) => {
      req.session.num = req.session.num || ++count;
      res.end(`session ${req.session.num}`);
    });

    store.get = function destroy(sid, callback) {
      const err = new Error('boom!');
      err.code = 'ENOENT';
      callback(err);
    };

    request(server)
      .get('/')
      .expect(shouldSetCookie('connect.sid'))
      .expect(200, 'session 1', (err, res) => {
        if (err) return done(err);
        request(server).get('/').set('Cookie', cookie(res)).expect(200, 'session 2', done);
      });
  });

  it('should create multiple sessions', (t, done) => {
    const cb = afterAll(2, check);
    let count = 0;
    const store = IMPL.createStore();
    const server = createServer({ store: store }, (req, res) => {
      const isnew = req.session.num === undefined;
      req.session.num = req.session.num || ++count;
      res.end(`session ${isnew ? 'created' : 'updated'}`);
    });
    const ids = [];

    function check(err) {
      if (err) return done(err);
      storeLength(server, store, ids, (err, len) => {
        if (err) return done(err);
        assert.strictEqual(len, 2);
        done();
      });
    }

    request(server)
      .get('/')
      .expect(200, 'session created', (err, res) => {
        if (res) ids.push(sid(res));
        cb(err);
      });

    request(server)
      .get('/')
      .expect(200, 'session created', (err, res) => {
        if (res) ids.push(sid(res));
        cb(err);
      });
  });

  it('should handle empty req.url', (t, done) => {
    function setup(req) {
      req.url = '';
    }

    request(createServer(setup)).get('/').expect(shouldSetCookie('connect.sid')).expect(200, done);
  });

  it('should handle multiple res.end calls', (t, done) => {
    const server = createServer(null, (req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.end('Hello, world!');
      res.end();
    });

    request(server).get('/').expect('Content-Type', 'text/plain').expect(200, 'Hello, world!', done);
  });

  it('should handle res.end(null) calls', (t, done) => {
    const server = createServer(null, (req, res) => {
      res.end(null);
    });

    request(server).get('/').expect(200, '', done);
  });

  it('should handle reserved properties in storage', storeInternal('writes a record into the Store directly (store.get, then store.set)'), (t, done) => {
    let count = 0;
    let sid;
    const store = IMPL.createStore();
    const server = createServer({ store: store }, (req, res) => {
      sid = req.session.id;
      req.session.num = req.session.num || ++count;
      res.end('session saved');
    });

    request(server)
      .get('/')
      .expect(200, 'session saved', (err, res) => {
        if (err) return done(err);
        store.get(sid, (err, sess) => {
          if (err) return done(err);
          // save is reserved
          sess.save = 'nope';
          store.set(sid, sess, (err) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(200, 'session saved', done);
          });
        });
      });
  });

  it('should only have session data enumerable (and cookie)', (t, done) => {
    const server = createServer(null, (req, res) => {
      req.session.test1 = 1;
      req.session.test2 = 'b';
      res.end(Object.keys(req.session).sort().join(','));
    });

    request(server).get('/').expect(200, 'cookie,test1,test2', done);
  });

  it('should not save with bogus req.sessionID', (t, done) => {
    const store = IMPL.createStore();
    const server = createServer({ store: store }, (req, res) => {
      req.sessionID = () => {};
      req.session.test1 = 1;
      req.session.test2 = 'b';
      res.end();
    });

    request(server)
      .get('/')
      .expect(shouldNotHaveHeader('Set-Cookie'))
      .expect(200, (err) => {
        if (err) return done(err);
        // the id the session had before the route replaced req.sessionID
        storeLength(server, store, [server.lastSessionID], (err, length) => {
          if (err) return done(err);
          assert.strictEqual(length, 0);
          done();
        });
      });
  });

  it('should update cookie expiration when slow write', (t, done) => {
    const server = createServer({ rolling: true }, (req, res) => {
      req.session.user = 'bob';
      res.write('hello, ');
      setTimeout(() => {
        res.end('world!');
      }, 200);
    });

    request(server)
      .get('/')
      .expect(shouldSetCookie('connect.sid'))
      .expect(200, (err, res) => {
        if (err) return done(err);
        const originalExpires = expires(res);
        setTimeout(
          () => {
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(shouldSetCookie('connect.sid'))
              .expect((res) => {
                assert.notStrictEqual(originalExpires, expires(res));
              })
              .expect(200, done);
          },
          1000 - (Date.now() % 1000) + 200
        );
      });
  });

  describe('when response ended', () => {
    it('should have saved session', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.hit = true;
        res.end('session saved');
      });
      const saved = watchStore(store, 200);

      request(server)
        .get('/')
        .expect(200)
        .expect('session saved')
        .end((err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should have saved session even with empty response', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.hit = true;
        res.setHeader('Content-Length', '0');
        res.end();
      });
      const saved = watchStore(store, 200);

      request(server)
        .get('/')
        .expect(200)
        .end((err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should have saved session even with multi-write', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.hit = true;
        res.setHeader('Content-Length', '12');
        res.write('hello, ');
        res.end('world');
      });
      const saved = watchStore(store, 200);

      request(server)
        .get('/')
        .expect(200)
        .expect('hello, world')
        .end((err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should have saved session even with non-chunked response', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.hit = true;
        res.setHeader('Content-Length', '13');
        res.end('session saved');
      });
      const saved = watchStore(store, 200);

      request(server)
        .get('/')
        .expect(200)
        .expect('session saved')
        .end((err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should have saved session with updated cookie expiration', storeInternal(READS_EXPIRES), (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ cookie: { maxAge: min }, store: store }, (req, res) => {
        req.session.user = 'bob';
        res.end(req.session.id);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          const id = res.text;
          store.get(id, (err, sess) => {
            if (err) return done(err);
            assert.ok(sess, 'session saved to store');
            const exp = new Date(sess.cookie.expires);
            assert.strictEqual(exp.toUTCString(), expires(res));
            setTimeout(
              () => {
                request(server)
                  .get('/')
                  .set('Cookie', cookie(res))
                  .expect(200, (err, res) => {
                    if (err) return done(err);
                    store.get(id, (err, sess) => {
                      if (err) return done(err);
                      assert.strictEqual(res.text, id);
                      assert.ok(sess, 'session still in store');
                      assert.notStrictEqual(new Date(sess.cookie.expires).toUTCString(), exp.toUTCString(), 'session cookie expiration updated');
                      done();
                    });
                  });
              },
              1000 - (Date.now() % 1000) + 200
            );
          });
        });
    });
  });

  describe('when sid not in store', () => {
    it('should create a new session', (t, done) => {
      let count = 0;
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.num = req.session.num || ++count;
        res.end(`session ${req.session.num}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'session 1', (err, res) => {
          if (err) return done(err);
          storeClear(server, store, [cookie(res)], (err) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(200, 'session 2', done);
          });
        });
    });

    it('should have a new sid', (t, done) => {
      let count = 0;
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.num = req.session.num || ++count;
        res.end(`session ${req.session.num}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'session 1', (err, res) => {
          if (err) return done(err);
          storeClear(server, store, [cookie(res)], (err) => {
            if (err) return done(err);
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(shouldSetCookie('connect.sid'))
              .expect(shouldSetCookieToDifferentSessionId(sid(res)))
              .expect(200, 'session 2', done);
          });
        });
    });
  });

  describe('when sid not properly signed', () => {
    it('should generate new session', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, name: 'sessid' }, (req, res) => {
        const isnew = req.session.active === undefined;
        req.session.active = true;
        res.end(`session ${isnew ? 'created' : 'read'}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('sessid'))
        .expect(200, 'session created', (err, res) => {
          if (err) return done(err);
          const val = sid(res);
          assert.ok(val);
          request(server)
            .get('/')
            .set('Cookie', `sessid=${val}`)
            .expect(shouldSetCookie('sessid'))
            .expect(shouldSetCookieToDifferentSessionId(val))
            .expect(200, 'session created', done);
        });
    });

    it('should not attempt fetch from store', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, name: 'sessid' }, (req, res) => {
        const isnew = req.session.active === undefined;
        req.session.active = true;
        res.end(`session ${isnew ? 'created' : 'read'}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('sessid'))
        .expect(200, 'session created', (err, res) => {
          if (err) return done(err);
          const val = cookie(res).replace(/...\./, '.');

          assert.ok(val);
          request(server).get('/').set('Cookie', val).expect(shouldSetCookie('sessid')).expect(200, 'session created', done);
        });
    });
  });

  describe('when session expired in store', () => {
    it('should create a new session', deliberate(WHOLE_SECONDS), (t, done) => {
      let count = 0;
      const store = IMPL.createStore();
      const server = createServer({ store: store, cookie: { maxAge: 5 } }, (req, res) => {
        req.session.num = req.session.num || ++count;
        res.end(`session ${req.session.num}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'session 1', (err, res) => {
          if (err) return done(err);
          setTimeout(() => {
            request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetCookie('connect.sid')).expect(200, 'session 2', done);
          }, 20);
        });
    });

    it('should have a new sid', deliberate(WHOLE_SECONDS), (t, done) => {
      let count = 0;
      const store = IMPL.createStore();
      const server = createServer({ store: store, cookie: { maxAge: 5 } }, (req, res) => {
        req.session.num = req.session.num || ++count;
        res.end(`session ${req.session.num}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'session 1', (err, res) => {
          if (err) return done(err);
          setTimeout(() => {
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(shouldSetCookie('connect.sid'))
              .expect(shouldSetCookieToDifferentSessionId(sid(res)))
              .expect(200, 'session 2', done);
          }, 15);
        });
    });

    it('should not exist in store', deliberate(WHOLE_SECONDS), (t, done) => {
      let count = 0;
      const store = IMPL.createStore();
      const server = createServer({ store: store, cookie: { maxAge: 5 } }, (req, res) => {
        req.session.num = req.session.num || ++count;
        res.end(`session ${req.session.num}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'session 1', (err, res) => {
          if (err) return done(err);
          setTimeout(() => {
            storeLength(server, store, [sid(res)], (err, len) => {
              if (err) return done(err);
              assert.strictEqual(len, 0);
              done();
            });
          }, 10);
        });
    });
  });

  describe('when session without cookie property in store', () => {
    it('should pass error from inflate', storeInternal('writes a record without `cookie` into the Store directly (store.set)'), (t, done) => {
      let count = 0;
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.num = req.session.num || ++count;
        res.end(`session ${req.session.num}`);
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'session 1', (err, res) => {
          if (err) return done(err);
          store.set(sid(res), { foo: 'bar' }, (err) => {
            if (err) return done(err);
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(500, /Cannot read prop/, done);
          });
        });
    });
  });

  describe('proxy option', () => {
    describe('when enabled', () => {
      const server = sharedServer(() => {
        return createServer({ proxy: true, cookie: { secure: true, maxAge: 5 } });
      });

      it('should trust X-Forwarded-Proto when string', (t, done) => {
        request(server()).get('/').set('X-Forwarded-Proto', 'https').expect(shouldSetCookie('connect.sid')).expect(200, done);
      });

      it('should trust X-Forwarded-Proto when comma-separated list', (t, done) => {
        request(server()).get('/').set('X-Forwarded-Proto', 'https,http').expect(shouldSetCookie('connect.sid')).expect(200, done);
      });

      it('should work when no header', (t, done) => {
        request(server()).get('/').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
      });
    });

    describe('when disabled', () => {
      const server = sharedServer(() => {
        function setup(req) {
          req.secure = req.headers['x-secure'] ? JSON.parse(req.headers['x-secure']) : undefined;
        }

        function respond(req, res) {
          res.end(String(req.secure));
        }

        return createServer(setup, { proxy: false, cookie: { secure: true } }, respond);
      });

      it('should not trust X-Forwarded-Proto', (t, done) => {
        request(server()).get('/').set('X-Forwarded-Proto', 'https').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
      });

      it('should ignore req.secure', (t, done) => {
        request(server())
          .get('/')
          .set('X-Forwarded-Proto', 'https')
          .set('X-Secure', 'true')
          .expect(shouldNotHaveHeader('Set-Cookie'))
          .expect(200, 'true', done);
      });
    });

    describe('when unspecified', () => {
      const server = sharedServer(() => {
        function setup(req) {
          req.secure = req.headers['x-secure'] ? JSON.parse(req.headers['x-secure']) : undefined;
        }

        function respond(req, res) {
          res.end(String(req.secure));
        }

        return createServer(setup, { cookie: { secure: true } }, respond);
      });

      it('should not trust X-Forwarded-Proto', (t, done) => {
        request(server()).get('/').set('X-Forwarded-Proto', 'https').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
      });

      it('should use req.secure', (t, done) => {
        request(server()).get('/').set('X-Forwarded-Proto', 'https').set('X-Secure', 'true').expect(shouldSetCookie('connect.sid')).expect(200, 'true', done);
      });
    });
  });

  describe('cookie option', () => {
    describe('when "path" set to "/foo/bar"', () => {
      const server = sharedServer(() => {
        return createServer({ cookie: { path: '/foo/bar' } });
      });

      it('should not set cookie for "/" request', (t, done) => {
        request(server()).get('/').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
      });

      it('should not set cookie for "http://foo/bar" request', (t, done) => {
        request(server()).get('/').set('host', 'http://foo/bar').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
      });

      it('should set cookie for "/foo/bar" request', (t, done) => {
        request(server()).get('/foo/bar/baz').expect(shouldSetCookie('connect.sid')).expect(200, done);
      });

      it('should set cookie for "/foo/bar/baz" request', (t, done) => {
        request(server()).get('/foo/bar/baz').expect(shouldSetCookie('connect.sid')).expect(200, done);
      });

      describe('when mounted at "/foo"', () => {
        const server = sharedServer(() => {
          return createServer(mountAt('/foo'), { cookie: { path: '/foo/bar' } });
        });

        it('should set cookie for "/foo/bar" request', (t, done) => {
          request(server()).get('/foo/bar').expect(shouldSetCookie('connect.sid')).expect(200, done);
        });

        it('should not set cookie for "/foo/foo/bar" request', (t, done) => {
          request(server()).get('/foo/foo/bar').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
        });
      });
    });

    describe('when "secure" set to "auto"', () => {
      describe('when "proxy" is "true"', () => {
        const server = sharedServer(() => {
          return createServer({ proxy: true, cookie: { maxAge: 5, secure: 'auto' } });
        });

        it('should set secure when X-Forwarded-Proto is https', (t, done) => {
          request(server()).get('/').set('X-Forwarded-Proto', 'https').expect(shouldSetCookieWithAttribute('connect.sid', 'Secure')).expect(200, done);
        });
      });

      describe('when "proxy" is "false"', () => {
        const server = sharedServer(() => {
          return createServer({ proxy: false, cookie: { maxAge: 5, secure: 'auto' } });
        });

        it('should not set secure when X-Forwarded-Proto is https', (t, done) => {
          request(server()).get('/').set('X-Forwarded-Proto', 'https').expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure')).expect(200, done);
        });
      });

      describe('when "proxy" is undefined', () => {
        const server = sharedServer(() => {
          function setup(req) {
            req.secure = JSON.parse(req.headers['x-secure']);
          }

          function respond(req, res) {
            res.end(String(req.secure));
          }

          return createServer(setup, { cookie: { secure: 'auto' } }, respond);
        });

        it('should set secure if req.secure = true', (t, done) => {
          request(server()).get('/').set('X-Secure', 'true').expect(shouldSetCookieWithAttribute('connect.sid', 'Secure')).expect(200, 'true', done);
        });

        it('should not set secure if req.secure = false', (t, done) => {
          request(server()).get('/').set('X-Secure', 'false').expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure')).expect(200, 'false', done);
        });
      });
    });

    describe('when "cookie" is a function', () => {
      it('should call custom function and apply cookie options', (t, done) => {
        let cookieCallbackCalled = false;
        const cookieCallback = () => {
          cookieCallbackCalled = true;
          return { path: '/test', httpOnly: true, secure: false };
        };
        const server = createServer({ cookie: cookieCallback });
        request(server)
          .get('/test')
          .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'Path', '/test'))
          .expect(shouldSetCookieWithAttribute('connect.sid', 'HttpOnly'))
          .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure'))
          .expect(200, (err) => {
            if (err) return done(err);
            assert.strictEqual(cookieCallbackCalled, true, 'should have called cookie callback');
            done();
          });
      });

      it('should provide req argument', (t, done) => {
        const _path = '/test';
        let cookieCallbackCalled = false;
        const cookieCallback = (req) => {
          cookieCallbackCalled = true;
          return { path: req.url, httpOnly: true, secure: false };
        };
        const server = createServer({ cookie: cookieCallback });
        request(server)
          .get(_path)
          .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'Path', _path))
          .expect(shouldSetCookieWithAttribute('connect.sid', 'HttpOnly'))
          .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure'))
          .expect(200, (err) => {
            if (err) return done(err);
            assert.strictEqual(cookieCallbackCalled, true, 'should have called cookie callback');
            done();
          });
      });
    });

    describe('when "sameSite" set to "auto"', () => {
      describe('basic functionality', () => {
        const server = sharedServer(() => {
          function setup(req) {
            req.secure = JSON.parse(req.headers['x-secure']);
          }

          function respond(req, res) {
            res.end(String(req.secure));
          }

          return createServer(setup, { cookie: { sameSite: 'auto' } }, respond);
        });

        it('should set SameSite=None for secure connections', (t, done) => {
          request(server())
            .get('/')
            .set('X-Secure', 'true')
            .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'None'))
            .expect(200, 'true', done);
        });

        it('should set SameSite=Lax for insecure connections', (t, done) => {
          request(server())
            .get('/')
            .set('X-Secure', 'false')
            .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'Lax'))
            .expect(200, 'false', done);
        });
      });

      describe('with proxy settings', () => {
        describe('when "proxy" is "true"', () => {
          const server = sharedServer(() => {
            return createServer({ proxy: true, cookie: { sameSite: 'auto' } });
          });

          it('should set SameSite=None when X-Forwarded-Proto is https', (t, done) => {
            request(server())
              .get('/')
              .set('X-Forwarded-Proto', 'https')
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'None'))
              .expect(200, done);
          });

          it('should set SameSite=Lax when X-Forwarded-Proto is http', (t, done) => {
            request(server())
              .get('/')
              .set('X-Forwarded-Proto', 'http')
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'Lax'))
              .expect(200, done);
          });
        });

        describe('when "proxy" is "false"', () => {
          const server = sharedServer(() => {
            return createServer({ proxy: false, cookie: { sameSite: 'auto' } });
          });

          it('should set SameSite=Lax when X-Forwarded-Proto is https', (t, done) => {
            request(server())
              .get('/')
              .set('X-Forwarded-Proto', 'https')
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'Lax'))
              .expect(200, done);
          });
        });
      });

      describe('combined with secure auto', () => {
        describe('when "secure" is "auto"', () => {
          const server = sharedServer(() => {
            function setup(req) {
              req.secure = JSON.parse(req.headers['x-secure']);
            }

            function respond(req, res) {
              res.end(String(req.secure));
            }

            return createServer(setup, { cookie: { secure: 'auto', sameSite: 'auto' } }, respond);
          });

          it('should set both Secure and SameSite=None when secure', (t, done) => {
            request(server())
              .get('/')
              .set('X-Secure', 'true')
              .expect(shouldSetCookieWithAttribute('connect.sid', 'Secure'))
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'None'))
              .expect(200, 'true', done);
          });

          it('should set neither Secure nor SameSite=None when insecure', (t, done) => {
            request(server())
              .get('/')
              .set('X-Secure', 'false')
              .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure'))
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'Lax'))
              .expect(200, 'false', done);
          });
        });

        describe('when "secure" is "false"', () => {
          const server = sharedServer(() => {
            function setup(req) {
              req.secure = JSON.parse(req.headers['x-secure']);
            }

            function respond(req, res) {
              res.end(String(req.secure));
            }

            return createServer(setup, { cookie: { secure: false, sameSite: 'auto' } }, respond);
          });

          it('should set SameSite=None without Secure when secure', (t, done) => {
            request(server())
              .get('/')
              .set('X-Secure', 'true')
              .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure'))
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'None'))
              .expect(200, 'true', done);
          });

          it('should set SameSite=Lax without Secure when insecure', (t, done) => {
            request(server())
              .get('/')
              .set('X-Secure', 'false')
              .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure'))
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'Lax'))
              .expect(200, 'false', done);
          });
        });

        describe('when "secure" is "true"', () => {
          const server = sharedServer(() => {
            function setup(req) {
              req.secure = JSON.parse(req.headers['x-secure']);
            }

            function respond(req, res) {
              res.end(String(req.secure));
            }

            return createServer(setup, { cookie: { secure: true, sameSite: 'auto' } }, respond);
          });

          it('should set both Secure and SameSite=None when secure', (t, done) => {
            request(server())
              .get('/')
              .set('X-Secure', 'true')
              .expect(shouldSetCookieWithAttribute('connect.sid', 'Secure'))
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'SameSite', 'None'))
              .expect(200, 'true', done);
          });

          it('should not set cookie when insecure', (t, done) => {
            request(server()).get('/').set('X-Secure', 'false').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, 'false', done);
          });
        });
      });
    });
  });

  describe('genid option', () => {
    it('should reject non-function values', () => {
      assert.throws(IMPL.create.bind(null, { genid: 'bogus!' }), /genid.*must/);
    });

    it('should provide default generator', (t, done) => {
      request(createServer()).get('/').expect(shouldSetCookie('connect.sid')).expect(200, done);
    });

    it('should allow custom function', deliberate(NO_GENID), (t, done) => {
      function genid() {
        return 'apple';
      }

      request(createServer({ genid: genid }))
        .get('/')
        .expect(shouldSetCookieToValue('connect.sid', 's%3Aapple.D8Y%2BpkTAmeR0PobOhY4G97PRW%2Bj7bUnP%2F5m6%2FOn1MCU'))
        .expect(200, done);
    });

    it('should encode unsafe chars', deliberate(NO_GENID), (t, done) => {
      function genid() {
        return '%';
      }

      request(createServer({ genid: genid }))
        .get('/')
        .expect(shouldSetCookieToValue('connect.sid', 's%3A%25.kzQ6x52kKVdF35Qh62AWk4ZekS28K5XYCXKa%2FOTZ01g'))
        .expect(200, done);
    });

    it('should provide req argument', deliberate(NO_GENID), (t, done) => {
      function genid(req) {
        return req.url;
      }

      request(createServer({ genid: genid }))
        .get('/foo')
        .expect(shouldSetCookieToValue('connect.sid', 's%3A%2Ffoo.paEKBtAHbV5s1IB8B2zPnzAgYmmnRPIqObW4VRYj%2FMQ'))
        .expect(200, done);
    });
  });

  describe('key option', () => {
    it('should default to "connect.sid"', (t, done) => {
      request(createServer()).get('/').expect(shouldSetCookie('connect.sid')).expect(200, done);
    });

    it('should allow overriding', (t, done) => {
      request(createServer({ key: 'session_id' }))
        .get('/')
        .expect(shouldSetCookie('session_id'))
        .expect(200, done);
    });
  });

  describe('name option', () => {
    it('should default to "connect.sid"', (t, done) => {
      request(createServer()).get('/').expect(shouldSetCookie('connect.sid')).expect(200, done);
    });

    it('should set the cookie name', (t, done) => {
      request(createServer({ name: 'session_id' }))
        .get('/')
        .expect(shouldSetCookie('session_id'))
        .expect(200, done);
    });
  });

  describe('rolling option', () => {
    it('should default to false', (t, done) => {
      const server = createServer(null, (req, res) => {
        req.session.user = 'bob';
        res.end();
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          request(server).get('/').set('Cookie', cookie(res)).expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
        });
    });

    it('should force cookie on unmodified session', (t, done) => {
      const server = createServer({ rolling: true }, (req, res) => {
        req.session.user = 'bob';
        res.end();
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetCookie('connect.sid')).expect(200, done);
        });
    });

    it('should not force cookie on uninitialized session if saveUninitialized option is set to false', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, rolling: true, saveUninitialized: false });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldNotHaveHeader('Set-Cookie'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, false, done);
        });
    });

    it('should force cookie and save uninitialized session if saveUninitialized option is set to true', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, rolling: true, saveUninitialized: true });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should force cookie and save modified session even if saveUninitialized option is set to false', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, rolling: true, saveUninitialized: false }, (req, res) => {
        req.session.user = 'bob';
        res.end();
      });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });
  });

  describe('resave option', () => {
    it('should default to true', storeInternal(COUNTS_SETS), (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.user = 'bob';
        res.end();
      });

      request(server)
        .get('/')
        .expect(shouldSetSessionInStore(store))
        .expect(200, (err, res) => {
          if (err) return done(err);
          request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetSessionInStore(store)).expect(200, done);
        });
    });

    describe('when true', () => {
      it('should force save on unmodified session', storeInternal(COUNTS_SETS), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store, resave: true }, (req, res) => {
          req.session.user = 'bob';
          res.end();
        });

        request(server)
          .get('/')
          .expect(shouldSetSessionInStore(store))
          .expect(200, (err, res) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetSessionInStore(store)).expect(200, done);
          });
      });
    });

    describe('when false', () => {
      it('should prevent save on unmodified session', storeInternal(COUNTS_SETS), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store, resave: false }, (req, res) => {
          req.session.user = 'bob';
          res.end();
        });

        request(server)
          .get('/')
          .expect(shouldSetSessionInStore(store))
          .expect(200, (err, res) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(shouldNotSetSessionInStore(store)).expect(200, done);
          });
      });

      it('should still save modified session', storeInternal(COUNTS_SETS), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ resave: false, store: store }, (req, res) => {
          if (req.method === 'PUT') {
            req.session.token = req.url.slice(1);
          }
          res.end(`token=${req.session.token || ''}`);
        });

        request(server)
          .put('/w6RHhwaA')
          .expect(200)
          .expect(shouldSetSessionInStore(store))
          .expect('token=w6RHhwaA')
          .end((err, res) => {
            if (err) return done(err);
            const sess = cookie(res);
            request(server)
              .get('/')
              .set('Cookie', sess)
              .expect(200)
              .expect(shouldNotSetSessionInStore(store))
              .expect('token=w6RHhwaA')
              .end((err) => {
                if (err) return done(err);
                request(server).put('/zfQ3rzM3').set('Cookie', sess).expect(200).expect(shouldSetSessionInStore(store)).expect('token=zfQ3rzM3').end(done);
              });
          });
      });

      it('should detect a "cookie" property as modified', storeInternal(COUNTS_SETS), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store, resave: false }, (req, res) => {
          req.session.user = req.session.user || {};
          req.session.user.name = 'bob';
          req.session.user.cookie = req.session.user.cookie || 0;
          req.session.user.cookie++;
          res.end();
        });

        request(server)
          .get('/')
          .expect(shouldSetSessionInStore(store))
          .expect(200, (err, res) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetSessionInStore(store)).expect(200, done);
          });
      });

      it('should pass session touch error', storeInternal(STUBS_STORE), (t, done) => {
        const cb = afterAll(2, done);
        const store = IMPL.createStore();
        const server = createServer({ store: store, resave: false }, (req, res) => {
          req.session.hit = true;
          res.end('session saved');
        });

        store.touch = function touch(sid, sess, callback) {
          callback(new Error('boom!'));
        };

        server.on('error', function onerror(err) {
          assert.ok(err);
          assert.strictEqual(err.message, 'boom!');
          cb();
        });

        request(server)
          .get('/')
          .expect(200, 'session saved', (err, res) => {
            if (err) return cb(err);
            request(server).get('/').set('Cookie', cookie(res)).end(cb);
          });
      });
    });
  });

  describe('saveUninitialized option', () => {
    it('should default to true', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should force save of uninitialized session', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, saveUninitialized: true });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should prevent save of uninitialized session', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, saveUninitialized: false });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldNotHaveHeader('Set-Cookie'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, false, done);
        });
    });

    it('should still save modified session', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, saveUninitialized: false }, (req, res) => {
        req.session.count = req.session.count || 0;
        req.session.count++;
        res.end();
      });
      const saved = watchStore(store);

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, (err, res) => {
          if (err) return done(err);
          saved(server, res, true, done);
        });
    });

    it('should pass session save error', storeInternal(STUBS_STORE), (t, done) => {
      const cb = afterAll(2, done);
      const store = IMPL.createStore();
      const server = createServer({ store: store, saveUninitialized: true }, (req, res) => {
        res.end('session saved');
      });

      store.set = function destroy(sid, sess, callback) {
        callback(new Error('boom!'));
      };

      server.on('error', function onerror(err) {
        assert.ok(err);
        assert.strictEqual(err.message, 'boom!');
        cb();
      });

      request(server).get('/').expect(200, 'session saved', cb);
    });

    it('should prevent uninitialized session from being touched', storeInternal(STUBS_STORE), (t, done) => {
      const cb = afterAll(1, done);
      const store = IMPL.createStore();
      const server = createServer({ saveUninitialized: false, store: store, cookie: { maxAge: min } }, (req, res) => {
        res.end();
      });

      store.touch = () => {
        cb(new Error('should not be called'));
      };

      request(server).get('/').expect(200, cb);
    });
  });

  describe('secret option', () => {
    it('should reject empty arrays', deliberate(OWN_MESSAGES), () => {
      assert.throws(createServer.bind(null, { secret: [] }), /secret option array/);
    });

    it('should sign and unsign with a string', (t, done) => {
      const server = createServer({ secret: 'awesome cat' }, (req, res) => {
        if (!req.session.user) {
          req.session.user = 'bob';
          res.end('set');
        } else {
          res.end(`get:${JSON.stringify(req.session.user)}`);
        }
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'set', (err, res) => {
          if (err) return done(err);
          request(server).get('/').set('Cookie', cookie(res)).expect(200, 'get:"bob"', done);
        });
    });

    it('should sign and unsign with a Buffer', (t, done) => {
      const server = createServer({ secret: crypto.randomBytes(32) }, (req, res) => {
        if (!req.session.user) {
          req.session.user = 'bob';
          res.end('set');
        } else {
          res.end(`get:${JSON.stringify(req.session.user)}`);
        }
      });

      request(server)
        .get('/')
        .expect(shouldSetCookie('connect.sid'))
        .expect(200, 'set', (err, res) => {
          if (err) return done(err);
          request(server).get('/').set('Cookie', cookie(res)).expect(200, 'get:"bob"', done);
        });
    });

    describe('when an array', () => {
      it('should sign cookies', (t, done) => {
        const server = createServer({ secret: ['keyboard cat', 'nyan cat'] }, (req, res) => {
          req.session.user = 'bob';
          res.end(req.session.user);
        });

        request(server).get('/').expect(shouldSetCookie('connect.sid')).expect(200, 'bob', done);
      });

      it('should sign cookies with first element', (t, done) => {
        if (IMPL.probe === 'http') {
          // Ours has no store to share between two middlewares: the cookie that the original's
          // server2 (secret 'nyan cat') cannot read is checked for its signature instead.
          const server = createServer({ secret: ['keyboard cat', 'nyan cat'] }, (req, res) => {
            req.session.user = 'bob';
            res.end(req.session.user);
          });
          request(server)
            .get('/')
            .expect(shouldSetCookie('connect.sid'))
            .expect(200, 'bob', (err, res) => {
              if (err) return done(err);
              const value = decodeURIComponent(utils.parseSetCookie(cookie(res)).value).slice(2);
              assert.strictEqual(cookieSignature.unsign(value, 'keyboard cat'), sid(res), 'signed with the first secret');
              assert.strictEqual(cookieSignature.unsign(value, 'nyan cat'), false, 'not signed with the second secret');
              done();
            });
          return;
        }

        const store = IMPL.createStore();

        const server1 = createServer({ secret: ['keyboard cat', 'nyan cat'], store: store }, (req, res) => {
          req.session.user = 'bob';
          res.end(req.session.user);
        });

        const server2 = createServer({ secret: 'nyan cat', store: store }, (req, res) => {
          res.end(String(req.session.user));
        });

        request(server1)
          .get('/')
          .expect(shouldSetCookie('connect.sid'))
          .expect(200, 'bob', (err, res) => {
            if (err) return done(err);
            request(server2).get('/').set('Cookie', cookie(res)).expect(200, 'undefined', done);
          });
      });

      it('should read cookies using all elements', (t, done) => {
        if (IMPL.probe === 'http') {
          // Ours has no store to share between two middlewares: the session is made by the one
          // with both secrets, and its cookie signed again with the second (as the original's
          // server1, secret 'nyan cat', signs it) must read it.
          const server = createServer({ secret: ['keyboard cat', 'nyan cat'] }, (req, res) => {
            if (req.url === '/set') req.session.user = 'bob';
            res.end(String(req.session.user));
          });
          request(server)
            .get('/set')
            .expect(shouldSetCookie('connect.sid'))
            .expect(200, 'bob', (err, res) => {
              if (err) return done(err);
              const resigned = `connect.sid=${encodeURIComponent(`s:${cookieSignature.sign(sid(res), 'nyan cat')}`)}`;
              request(server).get('/').set('Cookie', resigned).expect(200, 'bob', done);
            });
          return;
        }

        const store = IMPL.createStore();

        const server1 = createServer({ secret: 'nyan cat', store: store }, (req, res) => {
          req.session.user = 'bob';
          res.end(req.session.user);
        });

        const server2 = createServer({ secret: ['keyboard cat', 'nyan cat'], store: store }, (req, res) => {
          res.end(String(req.session.user));
        });

        request(server1)
          .get('/')
          .expect(shouldSetCookie('connect.sid'))
          .expect(200, 'bob', (err, res) => {
            if (err) return done(err);
            request(server2).get('/').set('Cookie', cookie(res)).expect(200, 'bob', done);
          });
      });
    });
  });

  describe('unset option', () => {
    it('should reject unknown values', () => {
      assert.throws(IMPL.create.bind(null, { unset: 'bogus!' }), /unset.*must/);
    });

    it('should default to keep', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.count = req.session.count || 0;
        req.session.count++;
        if (req.session.count === 2) req.session = null;
        res.end();
      });

      request(server)
        .get('/')
        .expect(200, (err, res) => {
          if (err) return done(err);
          storeLength(server, store, [sid(res)], (err, len) => {
            if (err) return done(err);
            assert.strictEqual(len, 1);
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(200, (err) => {
                if (err) return done(err);
                storeLength(server, store, [sid(res)], (err, len) => {
                  if (err) return done(err);
                  assert.strictEqual(len, 1);
                  done();
                });
              });
          });
        });
    });

    it('should allow destroy on req.session = null', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, unset: 'destroy' }, (req, res) => {
        req.session.count = req.session.count || 0;
        req.session.count++;
        if (req.session.count === 2) req.session = null;
        res.end();
      });

      request(server)
        .get('/')
        .expect(200, (err, res) => {
          if (err) return done(err);
          storeLength(server, store, [sid(res)], (err, len) => {
            if (err) return done(err);
            assert.strictEqual(len, 1);
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(200, (err) => {
                if (err) return done(err);
                storeLength(server, store, [sid(res)], (err, len) => {
                  if (err) return done(err);
                  assert.strictEqual(len, 0);
                  done();
                });
              });
          });
        });
    });

    it('should not set cookie if initial session destroyed', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store, unset: 'destroy' }, (req, res) => {
        req.session = null;
        res.end();
      });

      request(server)
        .get('/')
        .expect(shouldNotHaveHeader('Set-Cookie'))
        .expect(200, (err) => {
          if (err) return done(err);
          storeLength(server, store, [server.lastSessionID], (err, len) => {
            if (err) return done(err);
            assert.strictEqual(len, 0);
            done();
          });
        });
    });

    it('should pass session destroy error', storeInternal(STUBS_STORE), (t, done) => {
      const cb = afterAll(2, done);
      const store = IMPL.createStore();
      const server = createServer({ store: store, unset: 'destroy' }, (req, res) => {
        req.session = null;
        res.end('session destroyed');
      });

      store.destroy = function destroy(sid, callback) {
        callback(new Error('boom!'));
      };

      server.on('error', function onerror(err) {
        assert.ok(err);
        assert.strictEqual(err.message, 'boom!');
        cb();
      });

      request(server).get('/').expect(200, 'session destroyed', cb);
    });
  });

  describe('res.end patch', () => {
    it('should correctly handle res.end/res.write patched prior', (t, done) => {
      function setup(req, res) {
        utils.writePatch(res);
      }

      function respond(req, res) {
        req.session.hit = true;
        res.write('hello, ');
        res.end('world');
      }

      request(createServer(setup, null, respond))
        .get('/')
        .expect(200, 'hello, world', done);
    });

    it('should correctly handle res.end/res.write patched after', (t, done) => {
      function respond(req, res) {
        utils.writePatch(res);
        req.session.hit = true;
        res.write('hello, ');
        res.end('world');
      }

      request(createServer(null, respond)).get('/').expect(200, 'hello, world', done);
    });

    it('should error when res.end is called twice', deliberate(HOLDS_RESPONSE), (t, done) => {
      let error1 = null;
      let error2 = null;
      const server = http.createServer((req, res) => {
        res.end();

        try {
          res.setHeader('Content-Length', '3');
          res.end('foo');
        } catch (e) {
          error1 = e;
        }
      });

      function respond(req, res) {
        res.end();

        try {
          res.setHeader('Content-Length', '3');
          res.end('foo');
        } catch (e) {
          error2 = e;
        }
      }

      request(server)
        .get('/')
        .end((err, res) => {
          if (err) return done(err);
          request(createServer(null, respond))
            .get('/')
            .expect(() => {
              assert.strictEqual(error1 && error1.message, error2 && error2.message);
            })
            .expect(res.statusCode, res.text, done);
        });
    });
  });

  describe('req.session', () => {
    it('should persist', (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.count = req.session.count || 0;
        req.session.count++;
        res.end(`hits: ${req.session.count}`);
      });

      request(server)
        .get('/')
        .expect(200, 'hits: 1', (err, res) => {
          if (err) return done(err);
          storeHas(server, store, sid(res), (err, sess) => {
            if (err) return done(err);
            assert.ok(sess);
            request(server).get('/').set('Cookie', cookie(res)).expect(200, 'hits: 2', done);
          });
        });
    });

    it('should only set-cookie when modified', (t, done) => {
      let modify = true;
      const server = createServer(null, (req, res) => {
        if (modify) {
          req.session.count = req.session.count || 0;
          req.session.count++;
        }
        res.end(req.session.count.toString());
      });

      request(server)
        .get('/')
        .expect(200, '1', (err, res) => {
          if (err) return done(err);
          request(server)
            .get('/')
            .set('Cookie', cookie(res))
            .expect(200, '2', (err, res) => {
              if (err) return done(err);
              const val = cookie(res);
              modify = false;

              request(server)
                .get('/')
                .set('Cookie', val)
                .expect(shouldNotHaveHeader('Set-Cookie'))
                .expect(200, '2', (err) => {
                  if (err) return done(err);
                  modify = true;

                  request(server).get('/').set('Cookie', val).expect(shouldSetCookie('connect.sid')).expect(200, '3', done);
                });
            });
        });
    });

    it('should not have enumerable methods', (t, done) => {
      const server = createServer(null, (req, res) => {
        req.session.foo = 'foo';
        req.session.bar = 'bar';
        const keys = [];
        for (const key in req.session) {
          keys.push(key);
        }
        res.end(keys.sort().join(','));
      });

      request(server).get('/').expect(200, 'bar,cookie,foo', done);
    });

    it('should not be set if store is disconnected', storeInternal("emits the Store's 'disconnect' event (ours has no Store object)"), (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        res.end(typeof req.session);
      });

      store.emit('disconnect');

      request(server).get('/').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, 'undefined', done);
    });

    it('should be set when store reconnects', storeInternal("emits the Store's 'disconnect' and 'connect' events (ours has no Store object)"), (t, done) => {
      const store = IMPL.createStore();
      const server = createServer({ store: store }, (req, res) => {
        res.end(typeof req.session);
      });

      store.emit('disconnect');

      request(server)
        .get('/')
        .expect(shouldNotHaveHeader('Set-Cookie'))
        .expect(200, 'undefined', (err) => {
          if (err) return done(err);

          store.emit('connect');

          request(server).get('/').expect(200, 'object', done);
        });
    });

    describe('.destroy()', () => {
      it('should destroy the previous session', (t, done) => {
        const server = createServer(null, (req, res) => {
          req.session.destroy((err) => {
            if (err) res.statusCode = 500;
            res.end(String(req.session));
          });
        });

        request(server).get('/').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, 'undefined', done);
      });
    });

    describe('.regenerate()', () => {
      it('should destroy/replace the previous session', (t, done) => {
        const server = createServer(null, (req, res) => {
          const id = req.session.id;
          req.session.regenerate((err) => {
            if (err) res.statusCode = 500;
            res.end(String(req.session.id === id));
          });
        });

        request(server)
          .get('/')
          .expect(shouldSetCookie('connect.sid'))
          .expect(200, (err, res) => {
            if (err) return done(err);
            request(server)
              .get('/')
              .set('Cookie', cookie(res))
              .expect(shouldSetCookie('connect.sid'))
              .expect(shouldSetCookieToDifferentSessionId(sid(res)))
              .expect(200, 'false', done);
          });
      });
    });

    describe('.reload()', () => {
      it('should reload session from store', (t, done) => {
        const server = createServer(null, (req, res) => {
          if (req.url === '/') {
            req.session.active = true;
            res.end('session created');
            return;
          }

          req.session.url = req.url;

          if (req.url === '/bar') {
            res.end(`saw ${req.session.url}`);
            return;
          }

          request(server)
            .get('/bar')
            .set('Cookie', val)
            .expect(200, 'saw /bar', (err, resp) => {
              if (err) return done(err);
              req.session.reload((err) => {
                if (err) return done(err);
                res.end(`saw ${req.session.url}`);
              });
            });
        });
        let val;

        request(server)
          .get('/')
          .expect(200, 'session created', (err, res) => {
            if (err) return done(err);
            val = cookie(res);
            request(server).get('/foo').set('Cookie', val).expect(200, 'saw /bar', done);
          });
      });

      it('should error is session missing', (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store }, (req, res) => {
          if (req.url === '/') {
            req.session.active = true;
            res.end('session created');
            return;
          }

          storeClear(server, store, [req.headers.cookie], (err) => {
            if (err) return done(err);
            req.session.reload((err) => {
              res.statusCode = err ? 500 : 200;
              res.end(err ? err.message : '');
            });
          });
        });

        request(server)
          .get('/')
          .expect(200, 'session created', (err, res) => {
            if (err) return done(err);
            request(server).get('/foo').set('Cookie', cookie(res)).expect(500, 'failed to load session', done);
          });
      });

      it('should not override an overridden `reload` in case of errors', (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store, resave: false }, (req, res) => {
          if (req.url === '/') {
            req.session.active = true;
            res.end('session created');
            return;
          }

          storeClear(server, store, [req.headers.cookie], (err) => {
            if (err) return done(err);

            // reload way too many times on top of each other,
            // attempting to overflow the call stack
            let iters = 20;
            reload();
            function reload() {
              if (!--iters) {
                res.end('ok');
                return;
              }

              try {
                req.session.reload(reload);
              } catch (e) {
                res.statusCode = 500;
                res.end(e.message);
              }
            }
          });
        });

        request(server)
          .get('/')
          .expect(200, 'session created', (err, res) => {
            if (err) return done(err);
            request(server).get('/foo').set('Cookie', cookie(res)).expect(200, 'ok', done);
          });
      });
    });

    describe('.save()', () => {
      it('should save session to store', (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store }, (req, res) => {
          req.session.hit = true;
          req.session.save((err) => {
            if (err) return res.end(err.message);
            storeHas(server, store, req.session.id, (err, sess) => {
              if (err) return res.end(err.message);
              res.end(sess ? 'stored' : 'empty');
            });
          });
        });

        request(server).get('/').expect(200, 'stored', done);
      });

      it('should prevent end-of-request save', storeInternal(COUNTS_SETS), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store }, (req, res) => {
          req.session.hit = true;
          req.session.save((err) => {
            if (err) return res.end(err.message);
            res.end('saved');
          });
        });

        request(server)
          .get('/')
          .expect(shouldSetSessionInStore(store))
          .expect(200, 'saved', (err, res) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetSessionInStore(store)).expect(200, 'saved', done);
          });
      });

      it('should prevent end-of-request save on reloaded session', storeInternal(COUNTS_SETS), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ store: store }, (req, res) => {
          req.session.hit = true;
          req.session.reload(() => {
            req.session.save((err) => {
              if (err) return res.end(err.message);
              res.end('saved');
            });
          });
        });

        request(server)
          .get('/')
          .expect(shouldSetSessionInStore(store))
          .expect(200, 'saved', (err, res) => {
            if (err) return done(err);
            request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetSessionInStore(store)).expect(200, 'saved', done);
          });
      });

      describe('when saveUninitialized is false', () => {
        it('should prevent end-of-request save', storeInternal(COUNTS_SETS), (t, done) => {
          const store = IMPL.createStore();
          const server = createServer({ saveUninitialized: false, store: store }, (req, res) => {
            req.session.hit = true;
            req.session.save((err) => {
              if (err) return res.end(err.message);
              res.end('saved');
            });
          });

          request(server)
            .get('/')
            .expect(shouldSetSessionInStore(store))
            .expect(200, 'saved', (err, res) => {
              if (err) return done(err);
              request(server).get('/').set('Cookie', cookie(res)).expect(shouldSetSessionInStore(store)).expect(200, 'saved', done);
            });
        });
      });
    });

    describe('.touch()', () => {
      it('should reset session expiration', storeInternal(READS_EXPIRES), (t, done) => {
        const store = IMPL.createStore();
        const server = createServer({ resave: false, store: store, cookie: { maxAge: min } }, (req, res) => {
          req.session.hit = true;
          req.session.touch();
          res.end();
        });

        request(server)
          .get('/')
          .expect(200, (err, res) => {
            if (err) return done(err);
            const id = sid(res);
            store.get(id, (err, sess) => {
              if (err) return done(err);
              const exp = new Date(sess.cookie.expires);
              setTimeout(() => {
                request(server)
                  .get('/')
                  .set('Cookie', cookie(res))
                  .expect(200, (err, res) => {
                    if (err) return done(err);
                    store.get(id, (err, sess) => {
                      if (err) return done(err);
                      assert.notStrictEqual(new Date(sess.cookie.expires).getTime(), exp.getTime());
                      done();
                    });
                  });
              }, 100);
            });
          });
      });
    });

    describe('.cookie', () => {
      describe('.*', () => {
        it('should serialize as parameters', (t, done) => {
          const server = createServer({ proxy: true }, (req, res) => {
            req.session.cookie.httpOnly = false;
            req.session.cookie.secure = true;
            res.end();
          });

          request(server)
            .get('/')
            .set('X-Forwarded-Proto', 'https')
            .expect(shouldSetCookieWithoutAttribute('connect.sid', 'HttpOnly'))
            .expect(shouldSetCookieWithAttribute('connect.sid', 'Secure'))
            .expect(200, done);
        });

        it('should default to a browser-session length cookie', (t, done) => {
          request(createServer({ cookie: { path: '/admin' } }))
            .get('/admin')
            .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Expires'))
            .expect(200, done);
        });

        it('should Set-Cookie only once for browser-session cookies', (t, done) => {
          const server = createServer({ cookie: { path: '/admin' } });

          request(server)
            .get('/admin/foo')
            .expect(shouldSetCookie('connect.sid'))
            .expect(200, (err, res) => {
              if (err) return done(err);
              request(server).get('/admin').set('Cookie', cookie(res)).expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
            });
        });

        it('should override defaults', (t, done) => {
          const opts = {
            httpOnly: false,
            maxAge: 5000,
            path: '/admin',
            priority: 'high',
            secure: true,
          };
          const server = createServer({ cookie: opts }, (req, res) => {
            req.session.cookie.secure = false;
            res.end();
          });

          request(server)
            .get('/admin')
            .expect(shouldSetCookieWithAttribute('connect.sid', 'Expires'))
            .expect(shouldSetCookieWithoutAttribute('connect.sid', 'HttpOnly'))
            .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'Path', '/admin'))
            .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Secure'))
            .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'Priority', 'High'))
            .expect(200, done);
        });

        it(
          'should forward errors setting cookie',
          deliberate('an invalid cookie.expires (new Date(NaN)) is refused at start-up (ERR_SESSION_CONFIG), not at each request'),
          (t, done) => {
            const cb = afterAll(2, done);
            const server = createServer({ cookie: { expires: new Date(Number.NaN) } }, (req, res) => {
              res.end();
            });

            server.on('error', function onerror(err) {
              assert.ok(err);
              assert.strictEqual(err.message, 'option expires is invalid');
              cb();
            });

            request(server).get('/admin').expect(200, cb);
          }
        );

        it('should preserve cookies set before writeHead is called', (t, done) => {
          const server = createServer(null, (req, res) => {
            res.setHeader('Set-Cookie', PREVIOUS_COOKIE);
            res.end();
          });

          request(server).get('/').expect(shouldSetCookieToValue('previous', 'cookieValue')).expect(200, done);
        });

        it('should preserve cookies set in writeHead', (t, done) => {
          const server = createServer(null, (req, res) => {
            res.writeHead(200, {
              'Set-Cookie': PREVIOUS_COOKIE,
            });
            res.end();
          });

          request(server).get('/').expect(shouldSetCookieToValue('previous', 'cookieValue')).expect(200, done);
        });
      });

      describe('.originalMaxAge', () => {
        it('should equal original maxAge', (t, done) => {
          const server = createServer({ cookie: { maxAge: 2000 } }, (req, res) => {
            res.end(JSON.stringify(req.session.cookie.originalMaxAge));
          });

          request(server)
            .get('/')
            .expect(200)
            .expect((res) => {
              // account for 1ms latency
              assert.ok(res.text === '2000' || res.text === '1999', `expected 2000, got ${res.text}`);
            })
            .end(done);
        });

        it('should equal original maxAge for all requests', (t, done) => {
          const server = createServer({ cookie: { maxAge: 2000 } }, (req, res) => {
            res.end(JSON.stringify(req.session.cookie.originalMaxAge));
          });

          request(server)
            .get('/')
            .expect(200)
            .expect((res) => {
              // account for 1ms latency
              assert.ok(res.text === '2000' || res.text === '1999', `expected 2000, got ${res.text}`);
            })
            .end((err, res) => {
              if (err) return done(err);
              setTimeout(() => {
                request(server)
                  .get('/')
                  .set('Cookie', cookie(res))
                  .expect(200)
                  .expect((res) => {
                    // account for 1ms latency
                    assert.ok(res.text === '2000' || res.text === '1999', `expected 2000, got ${res.text}`);
                  })
                  .end(done);
              }, 100);
            });
        });

        // The original's third test has the same name as the second; it runs on a custom Store
        // (test/support/smart-store.js). Named apart here, so that the two are counted apart.
        it('should equal original maxAge for all requests (SmartStore)', storeInternal('runs on a custom Store subclass (SmartStore)'), (t, done) => {
          const SmartStore = utils.smartStoreClass(IMPL.session.Store);
          const store = new SmartStore();
          const server = createServer({ cookie: { maxAge: 2000 }, store: store }, (req, res) => {
            res.end(JSON.stringify(req.session.cookie.originalMaxAge));
          });

          request(server)
            .get('/')
            .expect(200)
            .expect((res) => {
              // account for 1ms latency
              assert.ok(res.text === '2000' || res.text === '1999', `expected 2000, got ${res.text}`);
            })
            .end((err, res) => {
              if (err) return done(err);
              setTimeout(() => {
                request(server)
                  .get('/')
                  .set('Cookie', cookie(res))
                  .expect(200)
                  .expect((res) => {
                    // account for 1ms latency
                    assert.ok(res.text === '2000' || res.text === '1999', `expected 2000, got ${res.text}`);
                  })
                  .end(done);
              }, 100);
            });
        });
      });

      describe('.secure', () => {
        let app;
        let certificate;

        before(() => {
          certificate = utils.makeCertificate();
          app = createRequestListener({ secret: 'keyboard cat', cookie: { secure: true } });
        });

        after(() => {
          if (certificate) certificate.remove();
        });

        it('should set cookie when secure', (t, done) => {
          const cert = certificate.cert;
          const server = https.createServer({
            key: certificate.key,
            cert: cert,
          });

          server.on('request', app);

          const agent = new https.Agent({ ca: cert });
          const createConnection = agent.createConnection;

          agent.createConnection = function (options, ...rest) {
            options.servername = 'express-session.local';
            return createConnection.call(this, options, ...rest);
          };

          const req = request(server).get('/');
          req.agent(agent);
          req.expect(shouldSetCookie('connect.sid'));
          req.expect(200, done);
        });

        it('should not set-cookie when insecure', (t, done) => {
          const server = http.createServer(app);

          request(server).get('/').expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
        });
      });

      describe('.maxAge', () => {
        let server;
        let sessionCookie = '';

        before(async () => {
          sessionCookie = '';
          server = createServer({ cookie: { maxAge: 2000 } }, (req, res) => {
            switch (++req.session.count) {
              case 1:
                break;
              case 2:
                req.session.cookie.maxAge = 5000;
                break;
              case 3:
                req.session.cookie.maxAge = 3000000000;
                break;
              default:
                req.session.count = 0;
                break;
            }
            res.end(req.session.count.toString());
          });

          const res = await request(server).get('/');
          sessionCookie = res && cookie(res);
        });

        it('should set cookie expires relative to maxAge', (t, done) => {
          request(server).get('/').set('Cookie', sessionCookie).expect(shouldSetCookieToExpireIn('connect.sid', 2000)).expect(200, '1', done);
        });

        it('should modify cookie expires when changed', (t, done) => {
          request(server).get('/').set('Cookie', sessionCookie).expect(shouldSetCookieToExpireIn('connect.sid', 5000)).expect(200, '2', done);
        });

        it('should modify cookie expires when changed to large value', (t, done) => {
          request(server).get('/').set('Cookie', sessionCookie).expect(shouldSetCookieToExpireIn('connect.sid', 3000000000)).expect(200, '3', done);
        });
      });

      describe('.expires', () => {
        describe('when given a Date', () => {
          it('should set absolute', (t, done) => {
            const server = createServer(null, (req, res) => {
              req.session.cookie.expires = new Date(0);
              res.end();
            });

            request(server)
              .get('/')
              .expect(shouldSetCookieWithAttributeAndValue('connect.sid', 'Expires', 'Thu, 01 Jan 1970 00:00:00 GMT'))
              .expect(200, done);
          });
        });

        describe('when null', () => {
          it('should be a browser-session cookie', (t, done) => {
            const server = createServer(null, (req, res) => {
              req.session.cookie.expires = null;
              res.end();
            });

            request(server).get('/').expect(shouldSetCookieWithoutAttribute('connect.sid', 'Expires')).expect(200, done);
          });

          it('should not reset cookie', (t, done) => {
            const server = createServer(null, (req, res) => {
              req.session.cookie.expires = null;
              res.end();
            });

            request(server)
              .get('/')
              .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Expires'))
              .expect(200, (err, res) => {
                if (err) return done(err);
                request(server).get('/').set('Cookie', cookie(res)).expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
              });
          });

          it('should not reset cookie when modified', (t, done) => {
            const server = createServer(null, (req, res) => {
              req.session.cookie.expires = null;
              req.session.hit = (req.session.hit || 0) + 1;
              res.end();
            });

            request(server)
              .get('/')
              .expect(shouldSetCookieWithoutAttribute('connect.sid', 'Expires'))
              .expect(200, (err, res) => {
                if (err) return done(err);
                request(server).get('/').set('Cookie', cookie(res)).expect(shouldNotHaveHeader('Set-Cookie')).expect(200, done);
              });
          });
        });
      });

      describe('.partitioned', () => {
        describe('by default', () => {
          it('should not set partitioned attribute', (t, done) => {
            const server = createServer();

            request(server).get('/').expect(shouldSetCookieWithoutAttribute('connect.sid', 'Partitioned')).expect(200, done);
          });
        });

        describe('when "false"', () => {
          it('should not set partitioned attribute', (t, done) => {
            const server = createServer({ cookie: { partitioned: false } });

            request(server).get('/').expect(shouldSetCookieWithoutAttribute('connect.sid', 'Partitioned')).expect(200, done);
          });
        });

        describe('when "true"', () => {
          it('should set partitioned attribute', (t, done) => {
            const server = createServer({ cookie: { partitioned: true } });

            request(server).get('/').expect(shouldSetCookieWithAttribute('connect.sid', 'Partitioned')).expect(200, done);
          });
        });
      });
    });
  });

  describe('synchronous store', () => {
    it('should respond correctly on save', storeInternal('runs on a custom synchronous Store subclass (SyncStore)'), (t, done) => {
      const SyncStore = utils.syncStoreClass(IMPL.session.Store);
      const store = new SyncStore();
      const server = createServer({ store: store }, (req, res) => {
        req.session.count = req.session.count || 0;
        req.session.count++;
        res.end(`hits: ${req.session.count}`);
      });

      request(server).get('/').expect(200, 'hits: 1', done);
    });

    it('should respond correctly on destroy', storeInternal('runs on a custom synchronous Store subclass (SyncStore)'), (t, done) => {
      const SyncStore = utils.syncStoreClass(IMPL.session.Store);
      const store = new SyncStore();
      const server = createServer({ store: store, unset: 'destroy' }, (req, res) => {
        req.session.count = req.session.count || 0;
        const count = ++req.session.count;
        if (req.session.count > 1) {
          req.session = null;
          res.write('destroyed\n');
        }
        res.end(`hits: ${count}`);
      });

      request(server)
        .get('/')
        .expect(200, 'hits: 1', (err, res) => {
          if (err) return done(err);
          request(server).get('/').set('Cookie', cookie(res)).expect(200, 'destroyed\nhits: 2', done);
        });
    });
  });

  describe('cookieParser()', () => {
    it('should read from req.cookies', deliberate(COOKIE_HEADER), (t, done) => {
      const app = express()
        .use(cookieParser())
        .use((req, res, next) => {
          req.headers.cookie = 'foo=bar';
          next();
        })
        .use(createSession())
        .use((req, res, next) => {
          req.session.count = req.session.count || 0;
          req.session.count++;
          res.end(req.session.count.toString());
        });

      request(app)
        .get('/')
        .expect(200, '1', (err, res) => {
          if (err) return done(err);
          request(app).get('/').set('Cookie', cookie(res)).expect(200, '2', done);
        });
    });

    it('should reject unsigned from req.cookies', (t, done) => {
      const app = express()
        .use(cookieParser())
        .use((req, res, next) => {
          req.headers.cookie = 'foo=bar';
          next();
        })
        .use(createSession({ name: 'sessid' }))
        .use((req, res, next) => {
          req.session.count = req.session.count || 0;
          req.session.count++;
          res.end(req.session.count.toString());
        });

      request(app)
        .get('/')
        .expect(200, '1', (err, res) => {
          if (err) return done(err);
          request(app)
            .get('/')
            .set('Cookie', `sessid=${sid(res)}`)
            .expect(200, '1', done);
        });
    });

    it('should reject invalid signature from req.cookies', (t, done) => {
      const app = express()
        .use(cookieParser())
        .use((req, res, next) => {
          req.headers.cookie = 'foo=bar';
          next();
        })
        .use(createSession({ name: 'sessid' }))
        .use((req, res, next) => {
          req.session.count = req.session.count || 0;
          req.session.count++;
          res.end(req.session.count.toString());
        });

      request(app)
        .get('/')
        .expect(200, '1', (err, res) => {
          if (err) return done(err);
          const val = cookie(res).replace(/...\./, '.');
          request(app).get('/').set('Cookie', val).expect(200, '1', done);
        });
    });

    it('should read from req.signedCookies', deliberate(COOKIE_HEADER), (t, done) => {
      const app = express()
        .use(cookieParser('keyboard cat'))
        .use((req, res, next) => {
          delete req.headers.cookie;
          next();
        })
        .use(createSession())
        .use((req, res, next) => {
          req.session.count = req.session.count || 0;
          req.session.count++;
          res.end(req.session.count.toString());
        });

      request(app)
        .get('/')
        .expect(200, '1', (err, res) => {
          if (err) return done(err);
          request(app).get('/').set('Cookie', cookie(res)).expect(200, '2', done);
        });
    });
  });
});

/** What express-session's `new Cookie().serialize('previous', 'cookieValue')` makes. */
const PREVIOUS_COOKIE = 'previous=cookieValue; Path=/; HttpOnly';

function cookie(res) {
  const setCookie = res.headers['set-cookie'];
  return (setCookie && setCookie[0]) || undefined;
}

function createServer(...args) {
  let [opts, fn] = args;
  const server = http.createServer();

  // setup, options, respond
  if (typeof args[0] === 'function') {
    opts = args[1];
    fn = args[2];

    server.on('request', args[0]);
  }

  const listener = createRequestListener(opts, fn);
  server.suite = listener.suite;
  return server.on('request', listener);
}

function createRequestListener(opts, fn) {
  const options = { ...opts };
  const _session = createSession(options);
  const respond = fn || end;

  function onRequest(req, res) {
    // `this`: the server the request came to
    _session(req, res, (err) => onSession(this, req, res, err));
  }

  function onSession(server, req, res, err) {
    if (err && !res._header) {
      res.statusCode = err.status || 500;
      res.end(err.message);
      return;
    }

    if (err) {
      server.emit('error', err);
      return;
    }

    // for the 'http' probe: the id of the session this request had, and the probe's requests
    server.lastSessionID = req.sessionID;
    if (req.headers['x-suite-probe']) return answerProbe(req, res);

    respond(req, res);
  }

  const secret = Array.isArray(options.secret) ? options.secret[0] : options.secret;
  onRequest.suite = { name: options.name || options.key || 'connect.sid', secret };
  return onRequest;
}

function createSession(opts) {
  const options = opts || {};

  if (!('cookie' in options)) {
    options.cookie = { maxAge: 60 * 1000 };
  }

  if (!('secret' in options)) {
    options.secret = 'keyboard cat';
  }

  return IMPL.create(options);
}

function end(req, res) {
  res.end();
}

function expires(res) {
  const header = cookie(res);
  return header && utils.parseSetCookie(header).expires;
}

function mountAt(path) {
  return (req, res) => {
    if (req.url.indexOf(path) === 0) {
      req.originalUrl = req.url;
      req.url = req.url.slice(path.length);
    }
  };
}

function shouldNotHaveHeader(header) {
  return (res) => {
    assert.ok(!(header.toLowerCase() in res.headers), `should not have ${header} header`);
  };
}

function shouldNotSetSessionInStore(store) {
  const _set = store.set;
  let count = 0;

  store.set = function set(...args) {
    count++;
    return _set.apply(this, args);
  };

  return () => {
    assert.ok(count === 0, 'should not set session in store');
  };
}

function shouldSetCookie(name) {
  return (res) => {
    const header = cookie(res);
    const data = header && utils.parseSetCookie(header);
    assert.ok(header, 'should have a cookie header');
    assert.strictEqual(data.name, name, `should set cookie ${name}`);
  };
}

function shouldSetCookieToDifferentSessionId(id) {
  return (res) => {
    assert.notStrictEqual(sid(res), id);
  };
}

function shouldSetCookieToExpireIn(name, delta) {
  return (res) => {
    const header = cookie(res);
    const data = header && utils.parseSetCookie(header);
    assert.ok(header, 'should have a cookie header');
    assert.strictEqual(data.name, name, `should set cookie ${name}`);
    assert.ok('expires' in data, 'should set cookie with attribute Expires');
    assert.ok('date' in res.headers, 'should have a date header');
    assert.strictEqual(Date.parse(data.expires) - Date.parse(res.headers.date), delta, `should set cookie ${name} to expire in ${delta} ms`);
  };
}

function shouldSetCookieToValue(name, val) {
  return (res) => {
    const header = cookie(res);
    const data = header && utils.parseSetCookie(header);
    assert.ok(header, 'should have a cookie header');
    assert.strictEqual(data.name, name, `should set cookie ${name}`);
    assert.strictEqual(data.value, val, `should set cookie ${name} to ${val}`);
  };
}

function shouldSetCookieWithAttribute(name, attrib) {
  return (res) => {
    const header = cookie(res);
    const data = header && utils.parseSetCookie(header);
    assert.ok(header, 'should have a cookie header');
    assert.strictEqual(data.name, name, `should set cookie ${name}`);
    assert.ok(attrib.toLowerCase() in data, `should set cookie with attribute ${attrib}`);
  };
}

function shouldSetCookieWithAttributeAndValue(name, attrib, value) {
  return (res) => {
    const header = cookie(res);
    const data = header && utils.parseSetCookie(header);
    assert.ok(header, 'should have a cookie header');
    assert.strictEqual(data.name, name, `should set cookie ${name}`);
    assert.ok(attrib.toLowerCase() in data, `should set cookie with attribute ${attrib}`);
    assert.strictEqual(data[attrib.toLowerCase()], value, `should set cookie with attribute ${attrib} set to ${value}`);
  };
}

function shouldSetCookieWithoutAttribute(name, attrib) {
  return (res) => {
    const header = cookie(res);
    const data = header && utils.parseSetCookie(header);
    assert.ok(header, 'should have a cookie header');
    assert.strictEqual(data.name, name, `should set cookie ${name}`);
    assert.ok(!(attrib.toLowerCase() in data), `should set cookie without attribute ${attrib}`);
  };
}

function shouldSetSessionInStore(store, delay) {
  const _set = store.set;
  let count = 0;

  store.set = function set(...args) {
    count++;

    if (!delay) {
      return _set.apply(this, args);
    }

    setTimeout(() => _set.apply(this, args), delay);
  };

  return () => {
    assert.ok(count === 1, 'should set session in store');
  };
}

function sid(res) {
  const header = cookie(res);
  const data = header && utils.parseSetCookie(header);
  const value = data && decodeURIComponent(data.value);
  const sid = value && value.substring(2, value.indexOf('.'));
  return sid || undefined;
}

// --- Looking into the store: the original's reads of the MemoryStore ('store' probe), or the
// same questions asked of the middleware over HTTP ('http' probe, ours). ---

/**
 * The original's shouldSetSessionInStore / shouldNotSetSessionInStore for a request's own (new)
 * session, created before the request: returns `(server, res, saved, cb)`, called once the
 * response is in. 'store': Store#set was called once (saved) or never (not saved) during the
 * request, as the original asserts; 'http': the session of that request is, or is not, in the
 * store once it has answered (its id from the Set-Cookie, else the req.sessionID it had).
 */
function watchStore(store, delay) {
  if (IMPL.probe === 'store') {
    const _set = store.set;
    let count = 0;
    store.set = function set(...args) {
      count++;
      if (!delay) return _set.apply(this, args);
      setTimeout(() => _set.apply(this, args), delay);
    };
    return (server, res, saved, cb) => {
      try {
        if (saved) assert.ok(count === 1, 'should set session in store');
        else assert.ok(count === 0, 'should not set session in store');
      } catch (err) {
        return cb(err);
      }
      cb();
    };
  }
  return (server, res, saved, cb) => {
    const id = sid(res) || server.lastSessionID;
    storeHas(server, store, id, (err, has) => {
      if (err) return cb(err);
      try {
        assert.strictEqual(has, saved, saved ? `should set session ${id} in store` : `should not set session ${id} in store`);
      } catch (err) {
        return cb(err);
      }
      cb();
    });
  };
}

/** Whether the store holds session `id`: store.get (express-session), or a probe request. */
function storeHas(server, store, id, cb) {
  if (IMPL.probe === 'store') return store.get(id, (err, sess) => cb(err, Boolean(sess)));
  probe(server, 'exists', signedCookie(server, id), (err, answer) => cb(err, answer === id));
}

/**
 * store.length: how many sessions the store holds. 'http': how many of `ids` (the sessions the
 * test made) the store holds.
 */
function storeLength(server, store, ids, cb) {
  if (IMPL.probe === 'store') return store.length(cb);
  let count = 0;
  let i = 0;
  const next = (err, has) => {
    if (err) return cb(err);
    if (has) count++;
    if (i === ids.length) return cb(null, count);
    const id = ids[i++];
    if (!id) return next(null, false);
    storeHas(server, store, id, next);
  };
  next(null, false);
}

/**
 * store.clear. 'http': each session whose Cookie header is in `cookies` destroyed by a request
 * carrying it (req.session.destroy()).
 */
function storeClear(server, store, cookies, cb) {
  if (IMPL.probe === 'store') return store.clear(cb);
  let i = 0;
  const next = (err) => {
    if (err) return cb(err);
    if (i === cookies.length) return cb(null);
    probe(server, 'destroy', cookies[i++], next);
  };
  next(null);
}

/** The signed cookie of session `id` on this server (cookie-signature, as express-session signs). */
function signedCookie(server, id) {
  const { name, secret } = server.suite;
  return `${name}=${encodeURIComponent(`s:${cookieSignature.sign(id, secret)}`)}`;
}

/** One probe request: its answer's text. */
function probe(server, kind, cookieHeader, cb) {
  request(server)
    .get('/')
    .set('X-Suite-Probe', kind)
    .set('Cookie', cookieHeader)
    .end((err, res) => {
      if (err) return cb(err);
      if (res.status !== 200) return cb(new Error(`probe ${kind}: ${res.status} ${res.text}`));
      cb(null, res.text);
    });
}

/** The probe's answers, in the request listener: the session's id, or it destroyed. */
function answerProbe(req, res) {
  if (req.headers['x-suite-probe'] === 'exists') return res.end(String(req.sessionID));
  req.session.destroy((err) => {
    res.statusCode = err ? 500 : 200;
    res.end(err ? err.message : 'destroyed');
  });
}
