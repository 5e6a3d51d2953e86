'use strict';

/**
 * OpenTelemetry metrics, when the app has `@opentelemetry/api` (an optional
 * peer dependency) and registers a MeterProvider before it makes the
 * middleware (the API hands out a no-op meter until then). The meter is
 * `alt-session`; names follow OpenTelemetry's conventions (dotted, units in
 * UCUM, namespaced attributes), modelled on the database client conventions
 * (`db.client.operation.duration`, `db.client.connection.count`):
 *
 * - `alt_session.operations` (counter, `{operation}`): operations finished;
 * - `alt_session.operation.duration` (histogram, `s`): from when its batch
 *   was sent to its answer, with the conventions' bucket boundaries;
 * - `alt_session.operation.pending` (up-down counter): calls not answered yet;
 * - `alt_session.connection.count` (up-down counter): connections to Redis by
 *   `alt_session.connection.state` (`connected`, `connecting`,
 *   `disconnected`), with `server.address` and `server.port`.
 *
 * The operations counter carries `op` (`get`, `write`, `load`...) and
 * `outcome`: `ok`, or the error's code (`ERR_SESSION_TIMEOUT`...), which a
 * failed one also carries as `error.type`, the conventions' attribute for
 * errors; the histogram `op`, and `error.type` for a failed one. Never an
 * id, a key or a value.
 *
 * The counts come from the engine's own (src/stats.rs), read when the
 * metrics are collected, so they cost nothing per request; the histogram is
 * recorded per operation, only where the API is installed.
 */

const { OPERATION_NAMES } = require('./events');
const { version } = require('../package.json');

/** The database client conventions' boundaries for `db.client.operation.duration`, in seconds. */
const BOUNDARIES = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];
const STATES = ['connected', 'connecting', 'disconnected'];

/** Stores whose middleware is open: the observable instruments report their sum. */
const live = new Set();
// Made once per process, with the first store made after a MeterProvider was
// registered; false where the API is not installed.
let instruments = null;

/** Measures `store`'s operations (until it closes), if there is a MeterProvider to measure for. */
function measure(store) {
  if (instruments === null) instruments = makeInstruments();
  if (!instruments) return;
  live.add(store);
  store.record = instruments.record;
}

/** `store` closes: the observable instruments leave it out from now on. */
function unmeasure(store) {
  live.delete(store);
}

/** The instruments; null without a MeterProvider yet, false without the API. */
function makeInstruments() {
  let api;
  try {
    api = require('@opentelemetry/api');
  } catch {
    return false; // not installed: nothing to measure for
  }
  const meter = api.metrics.getMeter('alt-session', version);
  // The API's no-op meter: no provider registered (yet). Nothing is recorded
  // then, not even the histogram's per-operation call.
  if (meter instanceof api.createNoopMeter().constructor) return null;
  const duration = meter.createHistogram('alt_session.operation.duration', {
    description: 'How long session operations took, from the call to the answer.',
    unit: 's',
    advice: { explicitBucketBoundaries: BOUNDARIES },
  });
  const operations = meter.createObservableCounter('alt_session.operations', {
    description: 'Session operations finished.',
    unit: '{operation}',
  });
  const pending = meter.createObservableUpDownCounter('alt_session.operation.pending', {
    description: 'Session operations waiting for their answer.',
    unit: '{operation}',
  });
  const connections = meter.createObservableUpDownCounter('alt_session.connection.count', {
    description: 'Connections to Redis, by state.',
    unit: '{connection}',
  });
  meter.addBatchObservableCallback((result) => observe(result, { operations, pending, connections }), [operations, pending, connections]);

  // The histogram's attributes are `op` (and `error.type` for a failed
  // operation) only: the SDK hashes them at every measurement, and each one
  // more costs a request about a microsecond (bench/observed.js).
  const succeeded = Object.fromEntries(Object.entries(OPERATION_NAMES).map(([kind, op]) => [kind, { op }]));
  return {
    /**
     * The durations of a batch's operations (`kinds`), answered now: one
     * clock read per batch; `resultOf(k)` is the k-th's result (an Error
     * for a failed one).
     */
    record(kinds, sentAt, resultOf) {
      const seconds = (performance.now() - sentAt) / 1000;
      for (let k = 0; k < kinds.length; k++) {
        const result = resultOf(k);
        const failed = result instanceof Error;
        duration.record(seconds, failed ? { op: OPERATION_NAMES[kinds[k]], 'error.type': result.code || 'Error' } : succeeded[kinds[k]]);
      }
    },
  };
}

/** An operation's attributes on the counter: `op`, `outcome`, and `error.type` for a failed one (its code). */
function attributes(op, code) {
  return code ? { op, outcome: code, 'error.type': code } : { op, outcome: 'ok' };
}

/** One collection: every live store's counts, summed per attribute set. */
function observe(result, { operations, pending, connections }) {
  // Keyed by the attributes' JSON (the instruments' attributes never overlap):
  // [instrument, attributes, value].
  const sums = new Map();
  const add = (instrument, attributes, value) => {
    const key = JSON.stringify(attributes);
    const entry = sums.get(key);
    if (entry) entry[2] += value;
    else sums.set(key, [instrument, attributes, value]);
  };
  let waiting = 0;
  for (const store of live) {
    const stats = store.stats();
    waiting += stats.pending;
    for (const [operation, { count, errors }] of Object.entries(stats.operations)) {
      let failed = 0;
      for (const [code, n] of Object.entries(errors)) {
        failed += n;
        add(operations, attributes(operation, code), n);
      }
      add(operations, attributes(operation), count - failed);
    }
    for (const { host, port, state } of stats.connections) {
      const server = host ? { 'server.address': host, 'server.port': port } : {}; // under Sentinel, none named yet
      for (const each of STATES) add(connections, { 'alt_session.connection.state': each, ...server }, each === state ? 1 : 0);
    }
  }
  result.observe(pending, waiting);
  for (const [instrument, attributes, value] of sums.values()) result.observe(instrument, value, attributes);
}

module.exports = { measure, unmeasure };
