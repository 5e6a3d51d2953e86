'use strict';

/**
 * The store, as the middleware sees it: one method per operation of the
 * native engine's stores (their Rust twin is src/store/mod.rs, the `Op`
 * each becomes), queued and sent in batches (lib/batch.js); and the engine's
 * synchronous calls (a request's session from its cookie, cookies to set).
 * On Redis a batch is one pipeline on a socket of Node's own event loop
 * (lib/link.js); in memory it finishes within `submit`; on a cluster, on
 * a socket per primary (lib/nodes.js), or, where redis-rs's cluster client
 * runs it on tokio, `submit` answers with a Promise.
 */

const native = require('./native');
const { Batches } = require('./batch');
const { RedisSocket } = require('./link');
const { NodeSockets } = require('./nodes');
const { OPERATION_NAMES } = require('./events');

const Op = native.OpKind;
const { ErrorCode } = native;

/**
 * Background idle refreshes (`awaitTouch: false`) are gathered for this long
 * and sent once per session: a busy session gets one EXPIRE per window
 * instead of one per request, and its TTL is late by at most this much.
 */
const TOUCH_WINDOW_MS = 100;

/** The id `ping()` reads: of an id's shape, never issued (the engine's ids are random). */
const PING_ID = 'alt-session-ping'.padEnd(43, '0');

class Store extends Batches {
  /**
   * @param {'redis' | 'memory'} backend
   * @param {string} optionsJson `JSON.stringify(options)`, validated in Rust (throws `ERR_SESSION_CONFIG`)
   * @param {boolean} [express] the options are the express-session entry point's
   */
  constructor(backend, optionsJson, express = false) {
    const engine = native.Engine[backend](optionsJson, express);
    super(engine.submit.bind(engine), (flags) => this.sockets && this.sockets.act(flags));
    this.native = engine;
    this.cookieName = engine.cookieName;
    this.verifiesCookies = engine.hasSecret;
    this.secureFollowsRequest = engine.secureFollowsRequest;
    this.awaitTouch = engine.awaitTouch;
    this.lazy = engine.lazy;
    this.persistent = engine.persistent;
    this.cookieMaxAgeMs = engine.cookieMaxAgeMs;
    this.refreshErrors = engine.refreshErrors;
    this.maxSessionsPerUser = engine.maxSessionsPerUser;
    this.express = engine.express; // null but for the express-session entry point
    this.pendingTouches = new Set();
    this.touchTimer = null;
    this.flushTouches = this.flushTouches.bind(this);
    /** `done` of a call nobody waits for: its error is reported (an `error` event), not lost. */
    this.reportError = (err) => err && this.report('error', err);
    const socketOptions = engine.socketOptions; // null in memory and on a cluster
    // What the middleware tells operators (lib/events.js): set by the middleware.
    this.report = noop;
    const report = (event, detail) => this.report(event, detail);
    this.socket = socketOptions && new RedisSocket(engine, socketOptions, this.handle, report);
    const cluster = backend === 'redis' && !socketOptions;
    // What the outcomes' flags act on: the one socket, or a cluster's.
    this.sockets = cluster ? new NodeSockets(engine, this.handle, report) : this.socket;
    // Under Sentinel the engine follows the sentinels' announcements: writes
    // wait while a failover is under way, and the connection moves with the primary.
    if (socketOptions && socketOptions.sentinel) {
      engine.watchSentinels(() => this.handle(engine.sentinelNews()));
    }
    // On a cluster the engine reads its topology: primaries up and down, slots that move.
    if (cluster) engine.watchCluster(() => this.tellClusterNews());
    this.whenIdle = null; // close() waiting for the calls in flight
    this.closed = null; // the promise close() returns, every time
  }

  /**
   * Resolves a request's session from its cookie: `{ id, isNew, mayCreate, setCookie, bound }`
   * (`mayCreate`: whether a write may create its hash, see src/sessions.rs;
   * `bound`: a signed-in session's).
   */
  open(cookieHeader, parserId, parserSecret, secure) {
    const opened = this.native.open(cookieHeader, parserId, parserSecret, secure);
    // The native side answers a returning visitor with the bare id (cheaper to cross).
    if (typeof opened !== 'string') return opened;
    return { id: opened, isNew: false, mayCreate: false, setCookie: null, bound: opened.length === native.BOUND_ID_LENGTH };
  }

  /** A fresh session for a request that moves to one; `bound` for one that signs in. */
  openFresh(bound, remember, parserSecret, secure) {
    return this.native.openFresh(bound, remember, parserSecret, secure);
  }

  /** The Set-Cookie of a persistent cookie's renewal, `maxAgeMs` from now (what a refresh answered). */
  renewedCookie(id, maxAgeMs, parserSecret, secure) {
    return this.native.renewedCookie(id, maxAgeMs, parserSecret, secure);
  }

  /**
   * The express-session entry point's `Set-Cookie` for `id`, until `expiresAt` (unix ms;
   * `null`: the browser session); `attributesJson` the cookie's own attributes, if any.
   */
  cookieUntil(id, expiresAt, parserSecret, secure, attributesJson) {
    return this.native.cookieUntil(id, expiresAt, parserSecret, secure, attributesJson);
  }

  /** Throws `ERR_SESSION_ARGUMENT` for an id the engine would not take (`genid`'s). */
  checkId(id) {
    this.native.checkId(id);
  }

  /** Throws (with its code) what `login(user, { meta })` would fail with. */
  checkLogin(user, meta) {
    this.native.checkLogin(user, meta);
  }

  clearCookie(secure) {
    return this.native.clearCookie(secure);
  }

  get(id, field, done) {
    this.strings.push(id, field);
    return this.enqueue(Op.Get, 2, 0, done);
  }

  mget(id, fields, done) {
    this.strings.push(id, ...fields);
    return this.enqueue(Op.MGet, 1 + fields.length, 0, done);
  }

  /** Results in a flat `[field, value, ...]` list. */
  getAll(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.GetAll, 1, 0, done);
  }

  /**
   * `set` is a flat `[field, json, ...]` list; `remove` a list of fields.
   * Results in `true`, or `false` when the session does not exist and `create`
   * was not allowed (nothing is written then: a dead id is never revived).
   */
  write(id, set, remove, create, done) {
    this.strings.push(id, ...set, ...remove);
    return this.enqueue(create ? Op.Create : Op.Write, 1 + set.length + remove.length, set.length, done);
  }

  /** Results in the new integer, or `false` as for `write`. */
  incr(id, field, by, create, done) {
    this.strings.push(id, field, String(by));
    return this.enqueue(Op.Incr, 3, create ? 1 : 0, done);
  }

  /** Moves the session's data to `newId` in one step; results in `false` when there was none. */
  rename(id, newId, done) {
    this.strings.push(id, newId);
    return this.enqueue(Op.Rename, 2, 0, done);
  }

  /** Records a session whose id was just issued, so that later requests' writes land under it. */
  start(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Start, 1, 0, done);
  }

  touch(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Touch, 1, 0, done);
  }

  /**
   * The round trip of one read that finds nothing (`HGET` of a key no
   * session has), in milliseconds: through the same batches and connection
   * as every call, so it fails as they would.
   */
  ping(done) {
    const started = performance.now();
    this.get(PING_ID, 'ping', (err) => (err ? done(err) : done(null, performance.now() - started)));
  }

  /**
   * What the engine counted (src/stats.rs), by operation name, with the
   * errors' totals and each connection's state: `mw.stats()` (index.d.ts).
   */
  stats() {
    const counted = this.native.stats();
    const operations = {};
    const errors = {};
    for (const { kind, count, errors: failed, latency } of counted.operations) {
      const byCode = {};
      for (const { code, count: n } of failed) {
        byCode[code] = n;
        errors[code] = (errors[code] || 0) + n;
      }
      operations[OPERATION_NAMES[kind]] = { count, errors: byCode, latency };
    }
    return {
      operations,
      errors,
      pending: counted.pending,
      connects: counted.connects,
      reconnects: Math.max(0, counted.connects - 1),
      connections: this.socket ? [this.socket.status()] : this.clusterNodes(),
    };
  }

  /** A cluster's primaries (none in memory), as `stats()` lists connections. */
  clusterNodes() {
    return this.native.clusterNodes().map(({ host, port, up }) => ({ host, port, state: up ? 'connected' : 'disconnected' }));
  }

  /** What changed in a cluster, as the middleware's events. */
  tellClusterNews() {
    for (const { event, node, to, slots } of this.native.clusterNews()) {
      if (event === 'connect') this.report('connect', { ...node });
      else if (event === 'disconnect') this.report('disconnect', { ...node, reason: 'the primary stopped answering', code: ErrorCode.Connection });
      else this.report('failover', { from: node, to, slots });
    }
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
    for (const id of this.pendingTouches) this.touch(id, this.reportError);
    this.pendingTouches.clear();
  }

  /** Results in 1 when the session existed, else 0. */
  destroy(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Destroy, 1, 0, done);
  }

  // --- signed-in sessions and their users' indexes (src/store/mod.rs) ---

  /** Binds a live session to `user`; `meta` (JSON) replaces the bound one when given. `false`: it ended. */
  bind(id, user, meta, remember, done) {
    this.strings.push(id, user);
    const persistent = remember ? 2 : 0;
    if (meta === undefined) return this.enqueue(Op.Bind, 2, persistent, done);
    this.strings.push(meta);
    return this.enqueue(Op.Bind, 3, 1 | persistent, done);
  }

  /**
   * A signed-in session's per-request refresh: `[userId, renew, cookie]` (`cookie`: `null`
   * for a browser-session cookie, else a persistent one's renewal in ms, `'0'` for none), or
   * `false` when it ended.
   */
  seen(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Seen, 1, 0, done);
  }

  /**
   * The express-session entry point's load: `seen`'s refresh and answer,
   * then the session's fields, `[userId, renew, cookie, field, json, ...]`;
   * or `false` when it ended.
   */
  load(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Load, 1, 0, done);
  }

  /** Moves a signed-in session's lease on, once its index entry was. */
  extend(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Extend, 1, 0, done);
  }

  /** `[userId, meta, signedInAt, lastSeenAt, createdAt]` of a session (nulls once it ended). */
  describe(id, done) {
    this.strings.push(id);
    return this.enqueue(Op.Describe, 1, 0, done);
  }

  /** Enters `id` in `user`'s index; `renew`: only if it is still there. Results in 1 when it holds the lease. */
  indexAdd(user, id, renew, done) {
    this.strings.push(user, id);
    return this.enqueue(Op.IndexAdd, 2, renew ? 1 : 0, done);
  }

  /** The ids in `user`'s index whose lease is not over. */
  indexList(user, done) {
    this.strings.push(user);
    return this.enqueue(Op.IndexList, 1, 0, done);
  }

  indexRemove(user, ids, done) {
    this.strings.push(user, ...ids);
    return this.enqueue(Op.IndexRemove, 1 + ids.length, 0, done);
  }

  /** The ids in `user`'s index ranked beyond `maxSessionsPerUser` by how recently they were active. */
  indexOverflow(user, done) {
    this.strings.push(user);
    return this.enqueue(Op.IndexOverflow, 1, 0, done);
  }

  /** Refuses new work; resolves once the calls in flight have finished and the socket is closed. */
  close() {
    if (this.closed) return this.closed;
    this.flushTouches();
    this.flush(true);
    this.native.close();
    this.closed = new Promise((resolve) => {
      this.whenIdle = resolve;
      this.settled();
    });
    return this.closed;
  }

  /** After every outcome: the socket follows the calls in flight, and a close() completes once there are none. */
  settled() {
    const busy = this.inFlight.size > 0;
    if (this.sockets) this.sockets.settle(busy);
    if (busy || !this.whenIdle) return;
    if (this.sockets) this.sockets.close();
    const resolve = this.whenIdle;
    this.whenIdle = null;
    resolve();
  }
}

/**
 * The store of a middleware, from the options the app gave: they cross as
 * JSON, validated in Rust (`express`: as the express-session entry point's).
 */
function createStore(backend, options, express = false) {
  let json;
  try {
    json = serializeOptions(options);
  } catch (err) {
    const error = new Error(`options cannot be read: ${err.message}`);
    error.code = native.ErrorCode.Config;
    throw error;
  }
  return new Store(backend, json, express);
}

/**
 * Options as JSON: numbers JSON cannot hold are kept visible so that they
 * fail validation, Dates cross as their time (ms), Buffers (TLS certificates and keys) cross as their text,
 * and a function (`userOf`) as the marker the engine knows it by.
 */
function serializeOptions(options) {
  if (options === undefined) return 'null';
  return JSON.stringify(options, function replacer(key, value) {
    const raw = this[key]; // before toJSON: a Buffer is still a Buffer here
    if (Buffer.isBuffer(raw)) return raw.toString('utf8');
    // A Date (cookie.expires) as its time; an invalid one kept visible, to be refused.
    if (raw instanceof Date) return Number.isNaN(raw.getTime()) ? 'Invalid Date' : raw.getTime();
    if (typeof value === 'function') return native.OPTION_FUNCTION;
    if (typeof value === 'bigint') return String(value);
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    return value;
  });
}

function noop() {}

module.exports = { Store, createStore };
