'use strict';

/**
 * `alt-session/express-session`: express-session's middleware over the same
 * engine. `req.session` is a plain object, loaded before the route with one
 * store command (the load and the idle refresh, `store.load`) and saved when
 * the response ends. A save writes only the properties that changed since
 * the load, compared as JSON, each one a field of the session's hash: two
 * requests that change different properties at once both keep their change,
 * and the per-key API (index.js) reads the same session. Its Rust twin,
 * src/config/express.rs, reads the options (express-session's names).
 */

const onHeaders = require('on-headers');
const { ErrorCode } = require('./native');
const { createStore } = require('./store');
const { renewLease, endOverflow } = require('./users');
const { withStoreMethods, appendSetCookie, checkUserId, codedError, decode } = require('./session');
const { Cookie } = require('./cookie');

/**
 * Creates the middleware on Redis.
 * @param {object} [options] express-session's, with `redis` in place of `store`; see README.md
 */
function session(options) {
  return middleware(createStore('redis', options, true), options);
}

/** The same middleware on the embedded in-memory store. */
session.mock = function mock(options) {
  return middleware(createStore('memory', options, true), options);
};

function middleware(store, options) {
  const settings = store.express;
  const userOf = settings.userOf ? options.userOf : null;
  const genid = settings.genid ? options.genid : null;
  // express-session's `cookie`: the options, or a function of the request that gives them.
  const cookieOf = typeof (options && options.cookie) === 'function' ? options.cookie : constant((options && options.cookie) || {});
  // The attributes the engine was given: a cookie with others sends its own (see Cookie#attributes).
  const ownAttributes = settings.cookiePerRequest ? null : new Cookie(cookieOf()).attributes();
  let warnedOfSecret = false;

  function expressSession(req, res, next) {
    if (req.session) return next(); // mounted twice
    let cookieOptions;
    try {
      cookieOptions = cookieOf(req) || {};
    } catch (err) {
      return next(err);
    }
    if (!pathOf(req).startsWith(cookieOptions.path || '/')) return next();
    const secure = isSecure(req, settings.proxy);
    let opened;
    try {
      const parsed = store.verifiesCookies ? undefined : parsedSessionId(req, store.cookieName);
      opened = store.open(req.headers.cookie, parsed, store.verifiesCookies ? undefined : req.secret, secure);
    } catch (err) {
      if (err.code === ErrorCode.Secret && !warnedOfSecret) {
        warnedOfSecret = true;
        process.emitWarning(err.message, { code: err.code });
      }
      return next(err);
    }
    const visit = {
      store,
      settings,
      userOf,
      genid,
      cookieOptions,
      ownAttributes,
      req,
      res,
      secure,
      cookieId: undefined,
      originalId: opened.id,
      touched: false,
      resigned: false,
    };
    hookResponse(visit, next);
    if (opened.isNew) {
      try {
        Session.generate(visit, genid ? fresh(visit, false).id : opened.id, false);
      } catch (err) {
        return next(err);
      }
      visit.originalId = req.sessionID;
      return next();
    }
    store.load(opened.id, (err, loaded) => {
      if (err) return next(err);
      if (loaded === false) {
        // Expired, revoked or destroyed: a new session, never the dead id.
        req.sessionEnded = true;
        try {
          Session.generate(visit, fresh(visit, false).id, false);
        } catch (freshErr) {
          return next(freshErr);
        }
        visit.originalId = req.sessionID;
        return next();
      }
      visit.cookieId = opened.id;
      visit.resigned = Boolean(opened.setCookie); // signed again after a secret rotation
      Session.loaded(visit, opened.id, opened.bound, loaded);
      next();
    });
  }

  return withStoreMethods(expressSession, store);
}

/**
 * As express-session: the cookie is set just before the headers go, and the
 * session saved when the response ends (the response waits for the save, so
 * that the next request reads what this one wrote).
 */
function hookResponse(visit, next) {
  const { req, res, store } = visit;
  onHeaders(res, () => {
    const sess = req.session;
    // A route that set req.sessionID to something else gets no cookie (express-session's rule).
    if (!sess || typeof req.sessionID !== 'string' || !shouldSetCookie(visit, sess)) return;
    const { cookie } = sess;
    // A cookie marked Secure is not sent over plain HTTP (express-session's rule).
    if (cookie.secure === true && !visit.secure) return;
    touchOnce(visit, sess);
    const attributes = cookie.attributes();
    const expires = cookie.expires ? cookie.expires.getTime() : null;
    const own = attributes === visit.ownAttributes ? undefined : attributes;
    appendSetCookie(res, store.cookieUntil(sess.id, expires, req.secret, visit.secure, own), store.cookieName);
  });
  const end = res.end;
  let ended = false;
  res.end = function endAfterSave(chunk, encoding, callback) {
    if (ended) return false;
    ended = true;
    const finish = (err) => {
      if (err) setImmediate(next, err); // as express-session: to the app's error handler
      end.call(res, chunk, encoding, callback);
    };
    const sess = req.session;
    if (!sess) {
      if (visit.settings.unsetDestroy && req.sessionID) return store.destroy(req.sessionID, (err) => finish(err));
      return end.call(res, chunk, encoding, callback);
    }
    touchOnce(visit, sess);
    if (typeof req.sessionID !== 'string') return end.call(res, chunk, encoding, callback);
    Session.saveAtEnd(sess, finish);
    return res;
  };
}

function touchOnce(visit, sess) {
  if (visit.touched) return;
  visit.touched = true;
  sess.touch();
}

/** express-session's rule for when the response carries the cookie. */
function shouldSetCookie(visit, sess) {
  if (visit.cookieId !== sess.id) return visit.settings.saveUninitialized || Session.isModified(sess);
  return visit.settings.rolling || visit.resigned || (sess.cookie.expires !== null && Session.isModified(sess));
}

/**
 * A fresh id for this request: `genid(req)`'s (checked as the engine's
 * are), or the engine's, `bound` for one that signs in.
 */
function fresh(visit, bound) {
  if (visit.genid === null) return visit.store.openFresh(bound, false, visit.req.secret, visit.secure);
  const id = visit.genid(visit.req);
  if (typeof id !== 'string') throw codedError(ErrorCode.Argument, `genid must return a string, got ${typeof id}`);
  visit.store.checkId(id);
  return { id };
}

/**
 * `req.session`: the data as its own properties (`cookie` aside), and
 * express-session's methods. What the store holds is kept as it was read,
 * field by field, so that a save sends only what changed.
 */
class Session {
  #visit;
  #id;
  /** Each stored property as the JSON the store holds. */
  #stored = new Map();
  /** Whether a write may create the hash: an id issued in this request. */
  #mayCreate;
  /** Whether the hash exists (read, started or written). */
  #exists;
  /** Whether the id has a signed-in session's shape (see src/sid.rs). */
  #bound;
  /** The user the store binds this session to (`userOf`'s answer when saved). */
  #user = null;
  /** Whether a save in this request wrote a change (what isModified remembers of it). */
  #wrote = false;

  constructor(visit, id, bound, exists) {
    this.#id = id;
    this.cookie = new Cookie(visit.cookieOptions);
    this.#visit = visit;
    this.#bound = bound;
    this.#exists = exists;
    this.#mayCreate = !exists;
  }

  /** The session's id (not a property of its data: no key, no JSON). */
  get id() {
    return this.#id;
  }

  /** A new, empty session for this request, as `req.session`. */
  static generate(visit, id, bound) {
    const sess = new Session(visit, id, bound, false);
    visit.req.sessionID = id;
    visit.req.session = sess;
    return sess;
  }

  /** The session `store.load` answered: `[userId, renew, cookie, field, json, ...]`. */
  static loaded(visit, id, bound, loaded) {
    const sess = Session.generate(visit, id, bound);
    sess.#adoptLoaded(loaded);
    return sess;
  }

  #adoptLoaded(loaded) {
    const visit = this.#visit;
    this.#exists = true;
    this.#mayCreate = false;
    this.#bound = this.#bound || loaded[0] !== null;
    this.#user = loaded[0];
    if (loaded[1] !== null) renewLease(visit.store, loaded[0], this.id);
    this.#stored.clear();
    for (let i = 3; i < loaded.length; i += 2) {
      const key = loaded[i];
      this.#stored.set(key, loaded[i + 1]);
      if (key === 'cookie') {
        this.cookie.adopt(decode(loaded[i + 1]));
        continue;
      }
      const value = decode(loaded[i + 1]);
      // A field named __proto__ is data, never the object's prototype.
      if (key === '__proto__') Object.defineProperty(this, key, { value, writable: true, enumerable: true, configurable: true });
      else this[key] = value;
    }
  }

  /**
   * Whether the request changed the session (express-session's isModified):
   * its id, or a property (one a save wrote, or one to write).
   */
  static isModified(sess) {
    if (sess.id !== sess.#visit.originalId || sess.#wrote) return true;
    try {
      return !isEmpty(sess.#changes());
    } catch {
      return true; // a value JSON cannot hold: the save says so
    }
  }

  /**
   * The response's end: saves what changed since the store was read (or
   * last written), and a new session not stored yet that is to be
   * (saveUninitialized, or its id changed); `done` at once when there is
   * nothing to save.
   */
  static saveAtEnd(sess, done) {
    sess.#save(done, true);
  }

  /** Resets the cookie's expiry (express-session does it on every request). */
  touch() {
    return this.resetMaxAge();
  }

  resetMaxAge() {
    this.cookie.maxAge = this.cookie.originalMaxAge;
    return this;
  }

  /** Saves what changed now (the response's end saves what changes after). */
  save(callback) {
    this.#save(callback || noop);
    return this;
  }

  /** Reads the session again from the store. */
  reload(callback) {
    const done = callback || noop;
    this.#visit.store.load(this.id, (err, loaded) => {
      if (err) return done(err);
      if (loaded === false) return done(new Error('failed to load session'));
      for (const key of Object.keys(this)) if (key !== 'cookie') delete this[key];
      this.#adoptLoaded(loaded);
      done();
    });
    return this;
  }

  /** Ends the session: deleted from the store, `req.session` removed. */
  destroy(callback) {
    const { store, req, res } = this.#visit;
    delete req.session;
    this.#end();
    // The browser holds a cookie for it: cleared, with the attributes it was set with.
    if (this.#visit.cookieId === this.id) appendSetCookie(res, store.clearCookie(this.#visit.secure), store.cookieName);
    store.destroy(this.id, (err) => (callback || noop)(err || undefined));
    return this;
  }

  /** A new id with empty data, as express-session; the old id ends at once. */
  regenerate(callback) {
    const visit = this.#visit;
    let id;
    try {
      id = fresh(visit, visit.userOf !== null).id;
    } catch (err) {
      process.nextTick(callback || noop, err);
      return this;
    }
    const old = this.id;
    this.#end();
    Session.generate(visit, id, visit.userOf !== null);
    visit.store.destroy(old, (err) => (callback || noop)(err || undefined));
    return this;
  }

  /** This session's id leaves the store and its user's index. */
  #end() {
    const { store } = this.#visit;
    if (this.#user !== null) store.indexRemove(this.#user, [this.id], noop);
    this.#user = null;
  }

  /**
   * The `cookie` field: this session's own `cookie.originalMaxAge` where it
   * differs from the options' (a "remember me" maxAge, or `expires = false`
   * for a cookie that ends with the browser), so that later requests keep
   * it; `undefined` where it does not.
   */
  #cookieJson() {
    const own = this.cookie instanceof Cookie ? this.cookie.originalMaxAge : null;
    const configured = this.#visit.cookieOptions.maxAge;
    if (own === (configured == null ? null : configured)) return undefined;
    return JSON.stringify({ originalMaxAge: own });
  }

  /** The fields to set (`[field, json, ...]`) and to delete since the store was read. */
  #changes() {
    const set = [];
    const remove = [];
    for (const key of Object.keys(this)) {
      if (key === 'cookie') continue;
      let json;
      try {
        json = JSON.stringify(this[key]);
      } catch (err) {
        throw codedError(ErrorCode.Argument, `req.session.${key} cannot be stored as JSON: ${err.message}`);
      }
      if (json === undefined) {
        if (this.#stored.has(key)) remove.push(key);
      } else if (this.#stored.get(key) !== json) {
        set.push(key, json);
      }
    }
    for (const key of this.#stored.keys()) if (key !== 'cookie' && !Object.hasOwn(this, key)) remove.push(key);
    const cookie = this.#cookieJson();
    if (cookie === undefined && this.#stored.has('cookie')) remove.push('cookie');
    else if (cookie !== undefined && this.#stored.get('cookie') !== cookie) set.push('cookie', cookie);
    return { set, remove };
  }

  /**
   * Writes what changed; a session `userOf` now says belongs to another
   * user (or to none) moves to a fresh id first, as a sign-in must.
   * `atEnd`: the response's end, which saves only what needs it.
   */
  #save(done, atEnd = false) {
    let changes;
    let user;
    try {
      changes = this.#changes();
      user = this.#userNow();
    } catch (err) {
      return atEnd ? done(err) : process.nextTick(done, err);
    }
    if (atEnd && isEmpty(changes) && user === this.#user) {
      const unstored = !this.#exists && (this.#visit.settings.saveUninitialized || this.id !== this.#visit.originalId || this.#wrote);
      if (!unstored) return done();
    }
    if (user !== this.#user && !(this.#mayCreate && this.#bound === (user !== null))) {
      return this.#moveTo(user, done);
    }
    this.#write(changes, user, done);
  }

  #write({ set, remove }, user, done) {
    const { store } = this.#visit;
    const written = (err, result) => {
      if (err) return done(err);
      if (result === false) return this.#moveTo(user, done, { set, remove }); // it ended meanwhile
      for (let i = 0; i < set.length; i += 2) this.#stored.set(set[i], set[i + 1]);
      for (const key of remove) this.#stored.delete(key);
      this.#exists = true;
      this.#mayCreate = false;
      this.#wrote = this.#wrote || !isEmpty({ set, remove });
      if (user === this.#user) return done();
      this.#signIn(user, done);
    };
    if (set.length === 0 && remove.length === 0) {
      if (this.#exists) return written(null, true);
      return store.start(this.id, written);
    }
    store.write(this.id, set, remove, this.#mayCreate, written);
  }

  /**
   * To a fresh id: the old one ends, and what the request holds is written
   * under the new one (`changes`: only those, when the session had ended:
   * what another request ended is not brought back).
   */
  #moveTo(user, done, changes) {
    const { res, store } = this.#visit;
    if (res.headersSent) {
      return process.nextTick(
        done,
        codedError(
          ErrorCode.HeadersSent,
          'the session must move to a new id (its user changed, or it ended), and the response was already sent: nothing was written'
        )
      );
    }
    let id;
    try {
      id = fresh(this.#visit, user !== null).id;
    } catch (err) {
      return process.nextTick(done, err);
    }
    if (!changes) store.destroy(this.id, noop);
    this.#end();
    this.#id = id;
    this.#visit.req.sessionID = id;
    this.#bound = user !== null;
    this.#exists = false;
    this.#mayCreate = true;
    const kept = changes ? new Set(changes.set.filter((_, i) => i % 2 === 0)) : null;
    this.#stored.clear();
    let all;
    try {
      all = this.#changes();
    } catch (err) {
      return process.nextTick(done, err);
    }
    if (kept) all.set = all.set.filter((_, i, list) => kept.has(list[i - (i % 2)]));
    all.remove = [];
    this.#write(all, user, done);
  }

  /** Enters the session in `user`'s index, then binds it (as login() does). */
  #signIn(user, done) {
    const { store, req } = this.#visit;
    const meta = JSON.stringify({ userAgent: String(req.headers['user-agent'] || '').slice(0, 256) });
    const id = this.id;
    store.indexAdd(user, id, false, (err) => {
      if (err) return done(err);
      store.bind(id, user, meta, false, (bindErr, bound) => {
        if (bindErr) return done(bindErr);
        if (!bound) return done(codedError(ErrorCode.Conflict, 'the session was revoked while it signed in'));
        this.#user = user;
        endOverflow(store, user, id, () => done());
      });
    });
  }

  /** `userOf(session)` as a user id (a string), or `null`. */
  #userNow() {
    const { userOf } = this.#visit;
    if (userOf === null) return null;
    const user = userOf(this);
    return user === null || user === undefined || user === false ? null : checkUserId(user);
  }
}

/** Whether the request came over HTTPS, as express-session's `proxy` says. */
function isSecure(req, proxy) {
  if (req.connection && req.connection.encrypted) return true;
  if (proxy === false) return false;
  if (proxy !== true) return req.secure === true;
  const header = req.headers['x-forwarded-proto'] || '';
  const index = header.indexOf(',');
  const proto = index !== -1 ? header.substring(0, index) : header;
  return proto.trim().toLowerCase() === 'https';
}

function pathOf(req) {
  const url = req.originalUrl || req.url || '/';
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

/** The id cookie-parser verified, if any. */
function parsedSessionId(req, cookieName) {
  const value = req.signedCookies && req.signedCookies[cookieName];
  return typeof value === 'string' ? value : undefined;
}

function isEmpty({ set, remove }) {
  return set.length === 0 && remove.length === 0;
}

function constant(value) {
  return () => value;
}

function noop() {}

module.exports = session;
module.exports.default = session;
module.exports.session = session;
