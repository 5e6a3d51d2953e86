'use strict';

/**
 * What the middleware tells operators: it is an EventEmitter, as Express's
 * app is one (`mw.on('connect' | 'disconnect' | 'failover' | 'error', listener)`), and
 * each event is also a line of `DEBUG=alt-session` (the `debug` package,
 * Express's and express-session's convention). Events and lines carry
 * addresses, reasons and error codes: never a session id, a value or a
 * password (error messages from the engine name a key as `<session key>`).
 *
 * - `connect` `{ host, port }`: a connection to Redis is open (after TLS).
 * - `disconnect` `{ host, port, reason, code }`: an open connection was
 *   lost; the next call connects anew.
 * - `failover` `{ from, to }` (addresses): under Sentinel, the sentinels
 *   moved the primary; the connection follows (writes waited meanwhile).
 *   On a cluster, `slots` of them moved from one primary to another (a
 *   replica took over, or a reshard).
 * - `error` (an Error with `code`): a connection could not be opened, or a
 *   per-request refresh failed where the route did not see it (the default
 *   `refreshErrors: 'ignore'`, `awaitTouch: false`). Unlike EventEmitter's
 *   default, an `error` nobody listens to never throws: it is logged.
 *
 * On a cluster the topology is read every 2 s (src/store/redis/topology.rs):
 * `connect` and `disconnect` are a primary answering or no longer answering.
 */

const diagnosticsChannel = require('node:diagnostics_channel');
const EventEmitter = require('node:events');
const { OpKind } = require('./native');
const log = require('debug')('alt-session');

/**
 * Makes `middleware` (a function) an EventEmitter; returns `report(event,
 * detail)`, which logs the event and emits it.
 */
function observable(middleware) {
  for (const key of Reflect.ownKeys(EventEmitter.prototype)) {
    if (key !== 'constructor') Object.defineProperty(middleware, key, Object.getOwnPropertyDescriptor(EventEmitter.prototype, key));
  }
  EventEmitter.call(middleware);
  const emit = (event, detail) => {
    if (event === 'error' && middleware.listenerCount('error') === 0) return;
    middleware.emit(event, detail);
  };
  return function report(event, detail) {
    if (log.enabled) log('%s %s', event, describe(event, detail));
    // On a tick of its own: a listener that throws is the app's uncaught
    // exception, and never interrupts the connection's bookkeeping.
    process.nextTick(emit, event, detail);
  };
}

function describe(event, detail) {
  if (event === 'connect') return address(detail);
  if (event === 'disconnect') return `${address(detail)} ${detail.code}: ${detail.reason}`;
  if (event === 'failover') return `${address(detail.from)} -> ${address(detail.to)}${detail.slots ? ` (${detail.slots} slots)` : ''}`;
  if (event === 'error') return `${detail.code}: ${detail.message}`;
  return JSON.stringify(detail);
}

function address(where) {
  return where && where.host ? `${where.host}:${where.port}` : 'unknown';
}

/**
 * Tracing, for APM agents (as undici and node-redis publish theirs):
 * `diagnostics_channel.tracingChannel('alt-session:operation')` publishes each
 * store operation's `start` and `end` (it is queued), then `asyncStart` and
 * `asyncEnd` around its callback, and `error` for one that failed. The
 * context is `{ operation }` (`'get'`, `'write'`, `'load'`...), and `error`
 * once it failed: never an id, a key or a value.
 */
const operations = diagnosticsChannel.tracingChannel('alt-session:operation');

/** Each `OpKind` by its number, named as a method is (`IndexAdd` -> `indexAdd`). */
const OPERATION_NAMES = Object.fromEntries(Object.entries(OpKind).map(([name, kind]) => [kind, name[0].toLowerCase() + name.slice(1)]));

/** Whether anyone subscribes to the operations' tracing. */
function tracing() {
  return operations.start.hasSubscribers || operations.asyncEnd.hasSubscribers || operations.error.hasSubscribers;
}

/** `done` of an operation of `kind`, traced: `start` and `end` published now, the rest around `done`. */
function traced(kind, done) {
  const context = { operation: OPERATION_NAMES[kind] };
  operations.start.publish(context);
  operations.end.publish(context);
  return (err, result) => {
    if (err) {
      context.error = err;
      operations.error.publish(context);
    }
    operations.asyncStart.publish(context);
    try {
      done(err, result);
    } finally {
      operations.asyncEnd.publish(context);
    }
  };
}

module.exports = { observable, tracing, traced, OPERATION_NAMES };
