'use strict';

/**
 * alt-session: asynchronous, per-key sessions for Express, on Redis or in memory.
 *
 * The middleware: a thin adapter over the Rust engine. The engine owns ids,
 * cookie signing and parsing, option validation and storage; this file turns
 * a request into its session (lib/session.js is `req.session`), and lib/ holds
 * the rest of the JavaScript side: the store's operations and their batches
 * (lib/store.js, lib/batch.js), the Redis socket (lib/link.js), sessions per
 * user (lib/users.js) and the loader of the native binary (lib/native.js).
 */

const { ErrorCode } = require('./lib/native');
const { createStore } = require('./lib/store');
const { Session, withStoreMethods, renewCookie, renewLease, isSecure, appendSetCookie } = require('./lib/session');

/**
 * Creates the session middleware on Redis.
 * @param {object} [options] `{ redis: {...}, session: {...} }`, see README.md
 */
function altSession(options) {
  return middleware(createStore('redis', options));
}

/**
 * The same middleware on the embedded in-memory store: for tests and
 * single-process apps. Sessions are isolated and expire after `tti` idle seconds.
 */
altSession.mock = function mock(options) {
  return middleware(createStore('memory', options));
};

function middleware(store) {
  const { cookieName, verifiesCookies, awaitTouch, secureFollowsRequest, lazy, refreshErrors, persistent } = store;
  // The per-request refresh's outcome, for the route: an error goes to
  // next(err) only under `session.refreshErrors: 'next'`; by default the
  // route runs, and only the calls that need the store fail.
  const proceedAfter = (next) =>
    refreshErrors === 'next'
      ? (err) => (err ? next(err) : next())
      : (err) => {
          if (err) store.reportError(err); // the route does not see it: operators do
          next();
        };

  let warnedOfSecret = false;

  function session(req, res, next) {
    let opened;
    try {
      opened = store.open(
        req.headers.cookie,
        verifiesCookies ? undefined : parsedSessionId(req, cookieName),
        verifiesCookies ? undefined : req.secret,
        // Express's req.secure is a getter worth skipping when the answer is unused.
        secureFollowsRequest && isSecure(req)
      );
    } catch (err) {
      // No secret cannot be known before a request shows whether cookie-parser
      // runs: said once on the process (a warning), and to each request.
      if (err.code === ErrorCode.Secret && !warnedOfSecret) {
        warnedOfSecret = true;
        process.emitWarning(err.message, { code: err.code });
      }
      return next(err);
    }
    // session.lazy: a new visitor's cookie waits for its first write, and
    // nothing is stored before it.
    if (lazy && opened.isNew) {
      req.session = new Session(store, opened, req, res, opened.setCookie);
      // From setImmediate, as below: the requests read in one turn answer together.
      return setImmediate(next);
    }
    if (opened.setCookie) appendSetCookie(res, opened.setCookie);
    req.session = new Session(store, opened, req, res);

    // A signed-in session's refresh also tells who the user is, which the
    // route needs: it is awaited whatever awaitTouch says.
    if (opened.bound) return refreshSignedIn(store, req, res, Boolean(opened.setCookie), proceedAfter(next));

    // One command per request: a new id is recorded (so that any later
    // request's write lands under it), a returning one has its idle TTL
    // refreshed. Not awaited when the store is slow to answer: a slow Redis
    // must not hold every route for commandTimeout.
    if (!awaitTouch || store.stalled()) {
      if (opened.isNew) store.start(opened.id, store.reportError);
      // A persistent cookie is renewed by a refresh this response waits for
      // (the renewal must reach the browser): while Redis is slow, the next one.
      else if (!persistent) store.touchSoon(opened.id);
      // Not at once: every request read in this turn of the event loop is
      // parsed before any of them answers, and the answers leave together
      // (measured: 0.89x of bare Express on a route that never touches the
      // session when called at once, 0.94x to 1.05x from setImmediate).
      return setImmediate(next);
    }
    const proceed = proceedAfter(next);
    if (opened.isNew) store.start(opened.id, proceed);
    else if (!persistent) store.touch(opened.id, proceed);
    else {
      store.touch(opened.id, (err, renewal) => {
        if (typeof renewal === 'number') renewCookie(store, req, res, opened.id, renewal);
        proceed(err);
      });
    }
  }

  return withStoreMethods(session, store);
}

/**
 * The per-request refresh of a signed-in session, which says its user id.
 * When it fails, the session reads as signed out: a user is never taken as
 * signed in when that could not be checked.
 */
function refreshSignedIn(store, req, res, resigned, next) {
  const { session } = req;
  store.seen(session.id, (err, seen) => {
    if (err) return next(err);
    // `false`: the session ended (revoked, expired); it reads as signed out.
    if (seen && seen[0] !== null) {
      Session.signedIn(session, seen);
      if (seen[1]) renewLease(store, seen[0], session.id);
      // A remembered session's persistent cookie, when its expiry moved past
      // the cookie's, or when the cookie was just signed again with a new
      // secret (open() cannot know that it is persistent).
      if (seen[2] !== null && seen[2] !== '0') renewCookie(store, req, res, session.id, Number(seen[2]));
      else if (seen[2] !== null && resigned) renewCookie(store, req, res, session.id, store.cookieMaxAgeMs);
    }
    next();
  });
}

/** The id cookie-parser verified, if any (`false` when its signature was wrong). */
function parsedSessionId(req, cookieName) {
  const value = req.signedCookies && req.signedCookies[cookieName];
  return typeof value === 'string' ? value : undefined;
}

module.exports = altSession;
module.exports.default = altSession;
module.exports.altSession = altSession;
