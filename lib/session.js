'use strict';

/**
 * `req.session` of the per-key API: every method a request's session has,
 * each a few engine operations (lib/store.js) with a Node-style callback and
 * a Promise; JSON encoding and decoding of values (V8 does that fastest). Its
 * Rust twin, src/sessions.rs, holds the rules these calls are checked
 * against (ids, keys, sizes) and resolves a session from its cookie.
 */

const { ErrorCode } = require('./native');
const { renewLease, endOverflow, listSessions, revokeSessions } = require('./users');
const { observable } = require('./events');
const { measure, unmeasure } = require('./metrics');

function isSecure(req) {
  if (typeof req.secure === 'boolean') return req.secure; // Express, honours trust proxy
  return Boolean(req.socket && req.socket.encrypted);
}

/**
 * Sends a persistent cookie again, `maxAgeMs` from now: what a refresh
 * answered once the session's expiry moved past the cookie's (the store
 * recorded it as sent, so it must be sent now).
 */
function renewCookie(store, req, res, id, maxAgeMs) {
  appendSetCookie(res, store.renewedCookie(id, maxAgeMs, req.secret, isSecure(req)), store.cookieName);
}

/** Adds a Set-Cookie header without clobbering those other code has set. */
function appendSetCookie(res, cookie, replacingName) {
  if (res.headersSent) return;
  let existing = res.getHeader('Set-Cookie');
  if (existing === undefined) return res.setHeader('Set-Cookie', cookie);
  existing = [].concat(existing);
  if (replacingName) existing = existing.filter((c) => !String(c).startsWith(`${replacingName}=`));
  res.setHeader('Set-Cookie', existing.concat(cookie));
}

/**
 * `req.session`: the session of one request. Every method takes an optional
 * Node-style callback and returns a Promise (see `run`); inside, operations
 * pass results on by callback, so a call costs one Promise, not a chain.
 */
class Session {
  // Private: keeps `console.log(req.session)` and JSON output to id and isNew.
  #store;
  #req;
  #res;
  /**
   * Whether a write may create the session's hash: for an id issued in this
   * request (and one of 0.0.1's, which stored nothing at issue). Any other
   * id whose hash is gone (expired, invalidated, regenerated away) is dead
   * and never revived: its first write moves the request to a fresh session
   * instead (see #retryOnFresh).
   */
  #mayCreate;
  /**
   * Under `session.lazy`, a new visitor's Set-Cookie until its first write
   * sends it (and creates the session); `null` once sent, or when there is none.
   */
  #unsentCookie;
  /** Whether the session was signed in to be remembered: its cookie persistent (`login(user, { remember })`). */
  #remember = false;

  /**
   * @param opened what `store.open` resolved: `{ id, isNew, mayCreate }`
   * @param {string | null} [unsentCookie] a lazy session's cookie, sent at its first write
   */
  constructor(store, opened, req, res, unsentCookie = null) {
    this.id = opened.id;
    this.isNew = opened.isNew;
    /** The user this session signed in as (`login()`), as a string; `null` when signed out. */
    this.userId = null;
    this.#store = store;
    this.#req = req;
    this.#res = res;
    this.#mayCreate = opened.mayCreate;
    this.#unsentCookie = unsentCookie;
  }

  /** Reads one key; a missing key reads as `null`. */
  get(key, callback) {
    return run(callback, (done) => {
      checkKey(key);
      this.#store.get(this.id, key, mapped(done, decode));
    });
  }

  /** Reads several keys into `{ key: value }`. */
  mget(keys, callback) {
    return run(callback, (done) => {
      const list = keyList(keys, 'mget');
      const toObject = (values) => Object.fromEntries(list.map((key, i) => [key, decode(values[i])]));
      this.#store.mget(this.id, list, mapped(done, toObject));
    });
  }

  /** Every key of the session, decoded. */
  getAll(callback) {
    return run(callback, (done) => this.#store.getAll(this.id, mapped(done, decodePairs)));
  }

  /** Stores one key; `undefined` removes it (as JSON.stringify drops it). */
  set(key, value, callback) {
    return run(callback, (done) => {
      checkKey(key);
      const json = encode(key, value);
      if (json === undefined) this.#write([], [key], done);
      else this.#write([key, json], [], done);
    });
  }

  /** Stores several keys atomically: all of them are written, or none. */
  mset(values, callback) {
    return run(callback, (done) => {
      if (values === null || typeof values !== 'object' || Array.isArray(values)) {
        throw argumentError('mset takes an object of { key: value }');
      }
      const set = [];
      const remove = [];
      for (const key of Object.keys(values)) {
        const json = encode(key, values[key]);
        if (json === undefined) remove.push(key);
        else set.push(key, json);
      }
      this.#write(set, remove, done);
    });
  }

  /** Removes one key or an array of keys. */
  remove(keys, callback) {
    return run(callback, (done) => this.#write([], keyList(keys, 'remove'), done));
  }

  /** Adds `by` (default 1) to an integer key atomically (HINCRBY); resolves the new value. */
  incr(key, by = 1, callback) {
    if (typeof by === 'function' && callback === undefined) [by, callback] = [1, by];
    return run(callback, (done) => {
      checkKey(key);
      if (!Number.isSafeInteger(by)) {
        throw argumentError(`incr takes a safe integer increment, got ${describe(by)}`);
      }
      this.#sendCookie('incr()');
      const incr = (then) => this.#store.incr(this.id, key, by, this.#mayCreate, then);
      this.#retryOnFresh(incr, (value) => value === false, done);
    });
  }

  /**
   * A new id and cookie for the same data; the old id is dead at once (its
   * key renamed, atomically). Call it at login and at every privilege change,
   * against session fixation. The id changes now, so that calls made after
   * this one, even in the same tick, go to the new id: they reach the store
   * after the rename. On failure the request keeps its old id and cookie.
   */
  regenerate(callback) {
    return run(callback, (done) => {
      // A signed-in session stays signed in, under its new id.
      if (this.userId !== null) return this.#signIn(this.userId, undefined, this.#remember, 'regenerate()', done);
      this.#renameToFresh(false, false, 'regenerate()', mapped(done, noop));
    });
  }

  /**
   * Signs the session in as `userId` (a string or a safe integer, kept as
   * a string): `regenerate()`, then the session is bound to the user, listed
   * by `mw.sessions(userId)` with `options.meta` and ended by `mw.revoke()`.
   */
  login(userId, options, callback) {
    if (typeof options === 'function' && callback === undefined) [options, callback] = [undefined, options];
    return run(callback, (done) => {
      const user = checkUserId(userId);
      const meta = encode('meta', options != null && options.meta !== undefined ? options.meta : null);
      const remember = options != null && options.remember !== undefined ? options.remember : false;
      if (typeof remember !== 'boolean') throw argumentError(`login(): remember is true or false, got ${describe(remember)}`);
      this.#store.checkLogin(user, meta);
      this.#signIn(user, meta, remember, 'login()', done);
    });
  }

  /**
   * What the middleware's refresh of a signed-in session said (`seen`,
   * see lib/store.js): who is signed in, and whether to be remembered.
   */
  static signedIn(session, seen) {
    session.userId = seen[0];
    session.#remember = seen[2] !== null;
  }

  /** Signs out: the session ends (as `invalidate()`) and leaves the user's list. */
  logout(callback) {
    return this.invalidate(callback);
  }

  /** Deletes the whole session and clears the cookie (with its path and domain). */
  invalidate(callback) {
    return run(callback, (done) => {
      const clear = this.#store.clearCookie(isSecure(this.#req));
      appendSetCookie(this.#res, clear, this.#store.cookieName);
      this.#mayCreate = false; // a later write in this request starts a fresh session
      this.#store.destroy(this.id, mapped(done, noop));
      if (this.userId === null) return;
      this.#store.indexRemove(this.userId, [this.id], noop); // else dropped lazily
      this.userId = null;
    });
  }

  /** Refreshes the idle timeout (the middleware does this on every request). */
  touch(callback) {
    return run(callback, (done) => {
      // A persistent cookie goes again when the refresh says so (see renewCookie).
      const renewed = (err, result) => {
        const renewal = Array.isArray(result) ? Number(result[2]) : result;
        if (typeof renewal === 'number' && renewal > 0) renewCookie(this.#store, this.#req, this.#res, this.id, renewal);
        done(err);
      };
      // A signed-in session's refresh keeps within its lease (see lib/users.js).
      if (this.userId !== null) this.#store.seen(this.id, renewed);
      else this.#store.touch(this.id, renewed);
    });
  }

  /**
   * Moves the session to a fresh id, data kept (the old key renamed,
   * atomically). The id changes now, so that calls made after this one,
   * even in the same tick, go to the new id: they reach the store after the
   * rename. On failure the request keeps its old id and cookie. `done(err,
   * moved)`: `moved` false when the session had ended (nothing to move).
   */
  #renameToFresh(bound, remember, what, done) {
    this.#ensureCookieCanBeSent(what);
    const before = { id: this.id, mayCreate: this.#mayCreate, unsentCookie: this.#unsentCookie, setCookie: this.#res.getHeader('Set-Cookie') };
    const fresh = this.#open(bound, remember);
    this.#store.rename(this.id, fresh.id, (err, moved) => {
      if (err) this.#restore(before);
      done(err, moved);
    });
    this.#adopt(fresh);
    // The rename leaves a hash under the new id in every case (the data, or
    // a fresh session's record when there was none): writes need not create it.
    this.#mayCreate = false;
  }

  /**
   * login() and a signed-in regenerate(): the move to a fresh signed-in id,
   * its entry in the user's index, then the binding. The entry comes before
   * the binding, so that no session is bound without being where revoke()
   * looks; `meta` undefined (regenerate()) keeps the meta bound before;
   * `remember`: a persistent cookie, the session remembered.
   */
  #signIn(user, meta, remember, what, done) {
    const previous = { user: this.userId, id: this.id };
    let renamed;
    this.#renameToFresh(true, remember, what, (err, moved) => (renamed = { err, moved }));
    const id = this.id;
    // Its result comes after the rename's: results arrive in the batch's order.
    this.#store.indexAdd(user, id, false, (err) => {
      if (renamed.err && renamed.err.code === ErrorCode.Conflict && meta !== undefined) {
        // Another request moved this session away a moment ago (a double
        // submit, or a planted cookie its planter regenerated): login()
        // signs in on a fresh session of its own rather than fail.
        this.#store.indexRemove(user, [id], noop);
        return this.#signInFresh(user, meta, remember, what, previous, done);
      }
      if (renamed.err) return done(renamed.err);
      if (err) return done(err);
      // regenerate() carries the sign-in over from a session that lived: one
      // revoked (or expired) since this request began comes back signed out.
      if (meta === undefined && !renamed.moved) {
        this.userId = null;
        this.#store.indexRemove(user, [id], noop);
        return done(null);
      }
      this.#bind(user, meta, remember, what, previous, done);
    });
  }

  /** login() on a fresh, empty signed-in session: recorded, entered in the user's index, bound. */
  #signInFresh(user, meta, remember, what, previous, done) {
    let fresh;
    try {
      this.#ensureCookieCanBeSent(what);
      fresh = this.#open(true, remember);
    } catch (err) {
      return done(err);
    }
    this.#adopt(fresh);
    this.isNew = true;
    this.#store.start(fresh.id, noop); // a failed start fails the bind after it
    this.#store.indexAdd(user, fresh.id, false, (err) => (err ? done(err) : this.#bind(user, meta, remember, what, previous, done)));
  }

  /** The binding of this session to `user`, the last step of a sign-in. */
  #bind(user, meta, remember, what, previous, done) {
    const id = this.id;
    this.#store.bind(id, user, meta, remember, (bindErr, bound) => {
      if (bindErr) return done(bindErr);
      if (!bound) return done(codedError(ErrorCode.Conflict, `${what}: the session was revoked while it signed in`));
      this.userId = user;
      this.#remember = remember;
      if (previous.user !== null) this.#store.indexRemove(previous.user, [previous.id], noop);
      // Beyond maxSessionsPerUser, the user's least recently active sessions end.
      endOverflow(this.#store, user, id, () => done(null));
    });
  }

  /** Writes; when the session is gone, moves to a fresh one and writes there. */
  #write(set, remove, done) {
    // A lazy session never stored has no keys to remove.
    if (this.#unsentCookie !== null && set.length === 0) return done(null);
    this.#sendCookie('a write');
    const write = (then) => this.#store.write(this.id, set, remove, this.#mayCreate, then);
    // Removing keys from a session that is gone leaves nothing to move.
    this.#retryOnFresh(write, (written) => !written && set.length > 0, mapped(done, noop));
  }

  /**
   * Runs `attempt(then)`; when its result says the session is gone, switches
   * this request to a fresh, empty session with its own cookie and runs it there.
   */
  #retryOnFresh(attempt, foundGone, done) {
    attempt((err, result) => {
      if (err || !foundGone(result)) return done(err, result);
      let fresh;
      try {
        this.#ensureCookieCanBeSent('a write to a session that ended');
        fresh = this.#open();
      } catch (openErr) {
        return done(openErr);
      }
      this.#adopt(fresh);
      this.isNew = true;
      this.userId = null; // the fresh session is nobody's
      attempt(done);
    });
  }

  /**
   * A fresh id and its Set-Cookie, signed as the middleware would sign it;
   * `bound` for one that signs in, `remember` for a persistent cookie.
   */
  #open(bound = false, remember = false) {
    return this.#store.openFresh(bound, remember, this.#req.secret, isSecure(this.#req));
  }

  #adopt(fresh) {
    this.#unsentCookie = null; // the fresh id's cookie takes its place
    this.id = fresh.id;
    this.#mayCreate = true;
    appendSetCookie(this.#res, fresh.setCookie, this.#store.cookieName);
  }

  /** Back to the id and Set-Cookie header the request had before a failed regenerate(). */
  #restore({ id, mayCreate, unsentCookie, setCookie }) {
    this.id = id;
    this.#mayCreate = mayCreate;
    this.#unsentCookie = unsentCookie;
    if (this.#res.headersSent) return;
    if (setCookie === undefined) this.#res.removeHeader('Set-Cookie');
    else this.#res.setHeader('Set-Cookie', setCookie);
  }

  /**
   * A lazy session's first write: its cookie goes with this response (the
   * write creates the session), and must still be able to.
   */
  #sendCookie(what) {
    if (this.#unsentCookie === null) return;
    this.#ensureCookieCanBeSent(`${what} to a session not stored yet (session.lazy)`);
    appendSetCookie(this.#res, this.#unsentCookie, this.#store.cookieName);
    this.#unsentCookie = null;
  }

  /**
   * A new id needs its cookie to reach the browser: once the response is
   * sent, moving to one would leave the data under an id nobody holds.
   */
  #ensureCookieCanBeSent(what) {
    if (this.#res.headersSent) {
      throw codedError(ErrorCode.HeadersSent, `${what} needs a new session cookie, and the response was already sent: nothing was written`);
    }
  }
}

/**
 * What both entry points' middleware has beside handling requests, on
 * `store`: its events (lib/events.js), `ping()`, `close()`, `sessions()` and
 * `revoke()`. Returns `middleware`.
 */
function withStoreMethods(middleware, store) {
  store.report = observable(middleware);
  measure(store);

  /** The round trip to the store, in milliseconds (see Store#ping); rejects with the error's code. */
  middleware.ping = (callback) => run(callback, (done) => store.ping(done));

  /** What the engine counted: operations, errors, latency, connections (see Store#stats). */
  middleware.stats = () => store.stats();

  /**
   * Graceful shutdown: calls in flight finish, then the connection closes.
   * (`done` on a tick of its own: a throwing callback is no rejection.)
   */
  middleware.close = (callback) =>
    run(callback, (done) => {
      unmeasure(store);
      store.close().then(() => process.nextTick(done, null));
    });

  /** The live sessions of a user: `[{ id, createdAt, lastSeenAt, meta }]`, most recently seen first. */
  middleware.sessions = (userId, callback) => run(callback, (done) => listSessions(store, checkUserId(userId), decode, done));

  /** Ends every session of a user but `options.except` (a session id); resolves how many ended. */
  middleware.revoke = (userId, options, callback) => {
    if (typeof options === 'function' && callback === undefined) [options, callback] = [undefined, options];
    return run(callback, (done) => revokeSessions(store, checkUserId(userId), exceptedId(options), done));
  };
  return middleware;
}

function checkKey(key) {
  if (typeof key !== 'string' || key === '') {
    throw argumentError(`session keys must be non-empty strings, got ${describe(key)}`);
  }
}

/** A user id as the store keeps it: a non-empty string, or a safe integer as its digits. */
function checkUserId(userId) {
  if (Number.isSafeInteger(userId)) return String(userId);
  if (typeof userId !== 'string' || userId === '') {
    throw argumentError(`a user id is a non-empty string or a safe integer, got ${describe(userId)}`);
  }
  return userId;
}

function exceptedId(options) {
  const except = options != null ? options.except : undefined;
  if (except === undefined || typeof except === 'string') return except;
  throw argumentError(`revoke(): except is a session id (req.session.id), got ${describe(except)}`);
}

function keyList(keys, method) {
  const list = typeof keys === 'string' ? [keys] : keys;
  if (!Array.isArray(list)) {
    throw argumentError(`${method} takes a key or an array of keys, got ${describe(keys)}`);
  }
  list.forEach(checkKey);
  return list;
}

function encode(key, value) {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw argumentError(`the value of "${key}" cannot be stored as JSON: ${err.message}`);
  }
}

/** A flat `[field, value, ...]` list as `{ field: decoded value }`. */
function decodePairs(flat) {
  const entries = [];
  for (let i = 0; i < flat.length; i += 2) entries.push([flat[i], decode(flat[i + 1])]);
  return Object.fromEntries(entries);
}

/** Values are JSON; a field someone stored raw reads back as the raw string. */
function decode(value) {
  if (value === null || value === undefined) return null;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? JSON.stringify(value) : `a ${typeof value}`;
}

/**
 * Runs one session operation, `operation(done)`, whose `done(err, result)`
 * is called from the event loop. Its outcome goes to the callback, if any,
 * and to the returned Promise. Validation errors (thrown by `operation`)
 * arrive the same way, on a later tick: a method never throws.
 */
function run(callback, operation) {
  let done;
  const promise = new Promise((resolve, reject) => {
    done = (err, result) => {
      if (err) {
        // Handled: code written for the original passes no callback and
        // ignores the promise; that is no unhandled rejection.
        promise.catch(noop);
        reject(err);
      } else {
        resolve(result);
      }
      // Outside the promise's reactions: a throwing callback is an ordinary
      // uncaught exception, as with any Node callback, not a lost rejection.
      if (typeof callback !== 'function') return;
      if (err) callback(err);
      else callback(null, result);
    };
  });
  try {
    operation(done);
  } catch (err) {
    process.nextTick(done, err);
  }
  return promise;
}

/** `done` for an operation whose raw result `map` turns into the caller's. */
function mapped(done, map) {
  return (err, result) => (err ? done(err) : done(null, map(result)));
}

function argumentError(message) {
  return codedError(ErrorCode.Argument, message);
}

function codedError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

function noop() {}

module.exports = {
  Session,
  withStoreMethods,
  renewCookie,
  renewLease,
  isSecure,
  appendSetCookie,
  checkUserId,
  exceptedId,
  codedError,
  decode,
  run,
};
