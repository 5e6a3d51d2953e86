'use strict';

/**
 * The JavaScript half of the engine's batch protocol (src/batch.rs).
 *
 * Operations are queued here and cross into Rust together in one `submit`
 * call. While calls are in flight the queue is sent from `setImmediate`, so
 * the operations of every request read in one turn of the event loop share a
 * batch (a `nextTick` would send one per request); an idle engine sends at
 * the end of the current callback, as nothing could join it anyway. On Redis
 * a batch is one pipeline on a socket of Node's own event loop (socket.js);
 * in memory it finishes within `submit`; on a cluster, `submit` answers with
 * a Promise of its outcome (redis-rs's cluster client runs it on tokio).
 */

const native = require('./native');
const { RedisSocket } = require('./socket');

// Operation kinds, numbered as in src/batch.rs.
const GET = 0;
const MGET = 1;
const GET_ALL = 2;
const WRITE = 3;
const TOUCH = 4;
const DESTROY = 5;
const CREATE = 6;
const INCR = 7;
const RENAME = 8;
const START = 9;
const BIND = 10;
const SEEN = 11;
const EXTEND = 12;
const DESCRIBE = 13;
const INDEX_ADD = 14;
const INDEX_LIST = 15;
const INDEX_REMOVE = 16;
const INDEX_OVERFLOW = 17;

const ERROR_CODE = /^(ERR_SESSION_[A-Z_]+): /;

/**
 * Background idle refreshes (`awaitTouch: false`) are gathered for this long
 * and sent once per session: a busy session gets one EXPIRE per window
 * instead of one per request, and its TTL is late by at most this much.
 */
const TOUCH_WINDOW_MS = 100;

class Engine {
  /**
   * @param {'redis' | 'memory'} backend
   * @param {string} optionsJson `JSON.stringify(options)`, validated in Rust
   */
  constructor(backend, optionsJson) {
    this.native = callNative(() => native.Engine[backend](optionsJson));
    this.cookieName = this.native.cookieName;
    this.verifiesCookies = this.native.hasSecret;
    this.secureFollowsRequest = this.native.secureFollowsRequest;
    this.awaitTouch = this.native.awaitTouch;
    this.maxSessionsPerUser = this.native.maxSessionsPerUser;
    this.batchId = 0;
    this.inFlight = new Map(); // batch id -> the waiters of its operations
    this.startBatch();
    this.flush = this.flush.bind(this);
    this.pendingTouches = new Set();
    this.touchTimer = null;
    this.flushTouches = this.flushTouches.bind(this);
    this.handle = this.handle.bind(this);
    const socketOptions = this.native.socketOptions; // null in memory
    this.socket = socketOptions && new RedisSocket(this.native, socketOptions, this.handle);
    // Under Sentinel the engine follows the sentinels' announcements: writes
    // wait while a failover is under way, and the connection moves with the primary.
    if (socketOptions && socketOptions.sentinel) {
      this.native.watchSentinels(() => this.handle(this.native.sentinelNews()));
    }
    this.whenIdle = null; // close() waiting for the calls in flight
    this.closed = null; // the promise close() returns, every time
  }

  /**
   * Resolves a request's session from its cookie: `{ id, isNew, mayCreate, setCookie }`
   * (`mayCreate`: whether a write may create its hash, see src/engine.rs).
   */
  open(cookieHeader, parserId, parserSecret, secure) {
    const opened = callNative(() => this.native.open(cookieHeader, parserId, parserSecret, secure));
    // The native side answers a returning visitor with the bare id (cheaper to cross).
    return typeof opened === 'string' ? { id: opened, isNew: false, mayCreate: false } : opened;
  }

  /** A fresh session for a request that moves to one; `bound` for one that signs in. */
  openFresh(bound, parserSecret, secure) {
    return callNative(() => this.native.openFresh(bound, parserSecret, secure));
  }

  /** Throws (with its code) what `login(user, { meta })` would fail with. */
  checkLogin(user, meta) {
    callNative(() => this.native.checkLogin(user, meta));
  }

  clearCookie(secure) {
    return this.native.clearCookie(secure);
  }

  get(id, field, done) {
    this.strings.push(id, field);
    return this.enqueue(GET, 2, 0, done);
  }

  mget(id, fields, done) {
    this.strings.push(id, ...fields);
    return this.enqueue(MGET, 1 + fields.length, 0, done);
  }

  /** Results in a flat `[field, value, ...]` list. */
  getAll(id, done) {
    this.strings.push(id);
    return this.enqueue(GET_ALL, 1, 0, done);
  }

  /**
   * `set` is a flat `[field, json, ...]` list; `remove` a list of fields.
   * Results in `true`, or `false` when the session does not exist and `create`
   * was not allowed (nothing is written then: a dead id is never revived).
   */
  write(id, set, remove, create, done) {
    this.strings.push(id, ...set, ...remove);
    return this.enqueue(create ? CREATE : WRITE, 1 + set.length + remove.length, set.length, done);
  }

  /** Results in the new integer, or `false` as for `write`. */
  incr(id, field, by, create, done) {
    this.strings.push(id, field, String(by));
    return this.enqueue(INCR, 3, create ? 1 : 0, done);
  }

  /** Moves the session's data to `newId` in one step; results in `false` when there was none. */
  rename(id, newId, done) {
    this.strings.push(id, newId);
    return this.enqueue(RENAME, 2, 0, done);
  }

  /** Records a session whose id was just issued, so that later requests' writes land under it. */
  start(id, done) {
    this.strings.push(id);
    return this.enqueue(START, 1, 0, done);
  }

  touch(id, done) {
    this.strings.push(id);
    return this.enqueue(TOUCH, 1, 0, done);
  }

  /** Refreshes the idle TTL within TOUCH_WINDOW_MS, without a result to wait for. */
  touchSoon(id) {
    this.pendingTouches.add(id);
    if (this.touchTimer) return;
    this.touchTimer = setTimeout(this.flushTouches, TOUCH_WINDOW_MS);
    this.touchTimer.unref(); // a pending refresh never holds the process open
  }

  flushTouches() {
    clearTimeout(this.touchTimer);
    this.touchTimer = null;
    for (const id of this.pendingTouches) this.touch(id, noop);
    this.pendingTouches.clear();
  }

  /** Results in 1 when the session existed, else 0. */
  destroy(id, done) {
    this.strings.push(id);
    return this.enqueue(DESTROY, 1, 0, done);
  }

  // --- signed-in sessions and their users' indexes (src/store/mod.rs) ---

  /** Binds a live session to `user`; `meta` (JSON) replaces the bound one when given. `false`: it ended. */
  bind(id, user, meta, done) {
    this.strings.push(id, user);
    if (meta === undefined) return this.enqueue(BIND, 2, 0, done);
    this.strings.push(meta);
    return this.enqueue(BIND, 3, 1, done);
  }

  /** A signed-in session's per-request refresh: `[userId, renew]`, or `false` when it ended. */
  seen(id, done) {
    this.strings.push(id);
    return this.enqueue(SEEN, 1, 0, done);
  }

  /** Moves a signed-in session's lease on, once its index entry was. */
  extend(id, done) {
    this.strings.push(id);
    return this.enqueue(EXTEND, 1, 0, done);
  }

  /** `[userId, meta, signedInAt, lastSeenAt, createdAt]` of a session (nulls once it ended). */
  describe(id, done) {
    this.strings.push(id);
    return this.enqueue(DESCRIBE, 1, 0, done);
  }

  /** Enters `id` in `user`'s index; `renew`: only if it is still there. Results in 1 when it holds the lease. */
  indexAdd(user, id, renew, done) {
    this.strings.push(user, id);
    return this.enqueue(INDEX_ADD, 2, renew ? 1 : 0, done);
  }

  /** The ids in `user`'s index whose lease is not over. */
  indexList(user, done) {
    this.strings.push(user);
    return this.enqueue(INDEX_LIST, 1, 0, done);
  }

  indexRemove(user, ids, done) {
    this.strings.push(user, ...ids);
    return this.enqueue(INDEX_REMOVE, 1 + ids.length, 0, done);
  }

  /** The ids in `user`'s index ranked beyond `maxSessionsPerUser` by how recently they were active. */
  indexOverflow(user, done) {
    this.strings.push(user);
    return this.enqueue(INDEX_OVERFLOW, 1, 0, done);
  }

  /** Refuses new work; resolves once the calls in flight have finished and the socket is closed. */
  close() {
    if (this.closed) return this.closed;
    this.flushTouches();
    this.flush();
    this.native.close();
    this.closed = new Promise((resolve) => {
      this.whenIdle = resolve;
      this.settle();
    });
    return this.closed;
  }

  // --- the batch -----------------------------------------------------------

  startBatch() {
    this.words = []; // the batch's numbers, in their wire form (src/batch.rs)
    this.strings = [];
    this.waiters = [];
    this.scheduled = false;
  }

  /**
   * Queues one operation. Its result goes to `done(err, result)`, called
   * from the event loop (never from within this call); without `done`, a
   * Promise of it is returned.
   */
  enqueue(kind, stringCount, aux, done) {
    // The operation's strings are the last `stringCount` pushed: their
    // lengths follow its numbers, and their text crosses joined.
    const { words, strings } = this;
    words.push(kind, stringCount, aux);
    for (let s = strings.length - stringCount; s < strings.length; s++) words.push(strings[s].length);
    if (!this.scheduled) {
      this.scheduled = true;
      // Idle: nothing to wait for, send at the end of this callback. Busy:
      // wait for the rest of this turn's requests, and send them together.
      if (this.inFlight.size === 0) process.nextTick(this.flush);
      else setImmediate(this.flush);
    }
    if (done) return void this.waiters.push(done);
    return new Promise((resolve, reject) =>
      this.waiters.push((err, result) => (err ? reject(err) : resolve(result)))
    );
  }

  flush() {
    if (this.words.length === 0) return;
    const { words, strings, waiters } = this;
    this.startBatch();
    this.batchId = (this.batchId + 1) >>> 0;
    this.inFlight.set(this.batchId, waiters);
    const batchId = this.batchId;
    let outcome;
    try {
      outcome = this.native.submit(batchId, new Uint32Array(words), strings.join(''));
    } catch (err) {
      return this.failBatch(batchId, err);
    }
    // A cluster's batch runs on tokio and answers on a Promise.
    if (typeof outcome.then === 'function') outcome.then(this.handle, (err) => this.failBatch(batchId, err));
    else this.handle(outcome);
  }

  /** Every call of a batch that could not run fails with `err`. */
  failBatch(batchId, err) {
    const waiters = this.inFlight.get(batchId) || [];
    this.inFlight.delete(batchId);
    const error = sessionError(err);
    for (const done of waiters) deliver(done, error);
    this.settle();
  }

  /**
   * Acts on what the engine answered: `[flags, batchId, count, result...,
   * batchId, count, result...]`. The socket first, then the finished
   * batches, each result to its waiter.
   */
  handle(outcome) {
    if (this.socket) this.socket.act(outcome[0]);
    for (let i = 1; i < outcome.length; ) {
      const waiters = this.inFlight.get(outcome[i]);
      const count = outcome[i + 1];
      this.inFlight.delete(outcome[i]);
      i += 2;
      for (let k = 0; k < count; k++, i++) deliver(waiters[k], outcome[i]);
    }
    this.settle();
  }

  /** After every outcome: the socket follows the calls in flight, and a close() completes once there are none. */
  settle() {
    const busy = this.inFlight.size > 0;
    if (this.socket) this.socket.settle(busy);
    if (busy || !this.whenIdle) return;
    if (this.socket) this.socket.close();
    const resolve = this.whenIdle;
    this.whenIdle = null;
    resolve();
  }
}

/**
 * Hands one result to its waiter: an `Error` as `done(err)`, anything else as
 * `done(null, result)`. A waiter that throws (a user's callback, called from
 * here directly) neither stops the others of the batch nor disappears: it is
 * thrown again on its own, as an uncaught exception.
 */
function deliver(done, result) {
  try {
    if (result instanceof Error) done(result);
    else done(null, result);
  } catch (err) {
    process.nextTick(rethrow, err);
  }
}

function rethrow(err) {
  throw err;
}

/** Runs a synchronous native call, giving its error a stable `code`. */
function callNative(call) {
  try {
    return call();
  } catch (err) {
    throw sessionError(err);
  }
}

/** Synchronous native errors arrive as "ERR_SESSION_X: message"; lift the code into `err.code`. */
function sessionError(err) {
  if (!(err instanceof Error)) err = new Error(String(err));
  const match = ERROR_CODE.exec(err.message);
  if (match) {
    err.code = match[1];
    err.message = err.message.slice(match[0].length);
  }
  return err;
}

function noop() {}

module.exports = { Engine };
