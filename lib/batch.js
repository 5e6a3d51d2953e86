'use strict';

/**
 * The JavaScript half of a batch (its Rust twin is src/batch.rs, which says
 * the wire format): every session operation issued in one turn of the event
 * loop crosses into the native engine in one `submit` call, as one
 * `Uint32Array` of numbers (per operation: its `OpKind`, how many strings it
 * takes, a kind-specific `aux` number, then each string's length) and one
 * string joining all its strings. The engine answers with an `Outcome`
 * (its layout in binding.d.ts): `LinkFlag` bits, then each finished batch's
 * id, count and results; each result goes to its operation's callback.
 *
 * While calls are in flight the queue is sent from `setImmediate`, so the
 * operations of every request read in one turn share a batch (a `nextTick`
 * would send one per request), and, behind a batch sent less than a
 * millisecond ago, once that batch is answered (see `holds()`); an idle
 * queue sends at the end of the current callback, as nothing could join it.
 */

const { tracing, traced } = require('./events');

class Batches {
  /**
   * @param {(batchId: number, words: Uint32Array, text: string) => Array | Promise<Array>} submit
   *   the engine's `submit`: an outcome, or (a cluster's) a Promise of one
   * @param {(flags: number) => void} onFlags what to do with an outcome's `LinkFlag` bits
   */
  constructor(submit, onFlags) {
    this.submit = submit;
    this.onFlags = onFlags;
    this.batchId = 0;
    this.inFlight = new Map(); // batch id -> the waiters of its operations
    /**
     * `record(kinds, sentAt, resultOf)`: each answered operation's duration,
     * from when its batch was sent (lib/metrics.js sets it where
     * OpenTelemetry's API is installed).
     */
    this.record = null;
    this.startBatch();
    this.holdTimer = null; // the queue waits for the answer to the batch sent last (see holds)
    this.flush = this.flush.bind(this);
    this.handle = this.handle.bind(this);
    this.release = this.release.bind(this);
  }

  startBatch() {
    this.words = [];
    this.strings = []; // pushed by the operation methods, before enqueue()
    this.waiters = [];
    this.kinds = []; // each waiter's OpKind
    this.scheduled = false;
  }

  /**
   * Queues one operation whose strings are the last `stringCount` pushed on
   * `this.strings`. Its result goes to `done(err, result)`, called from the
   * event loop (never from within this call); without `done`, a Promise of
   * it is returned.
   */
  enqueue(kind, stringCount, aux, done) {
    let promise;
    if (!done) promise = new Promise((resolve, reject) => (done = (err, result) => (err ? reject(err) : resolve(result))));
    if (tracing()) done = traced(kind, done); // lib/events.js: diagnostics_channel
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
    this.waiters.push(done);
    this.kinds.push(kind);
    return promise;
  }

  /** Sends the queue as one batch; `now`: even while it would wait for an answer (see holds). */
  flush(now) {
    if (this.words.length === 0) return;
    if (now !== true && this.holds()) return;
    clearTimeout(this.holdTimer);
    this.holdTimer = null;
    const { words, strings, waiters, kinds } = this;
    this.startBatch();
    this.batchId = (this.batchId + 1) >>> 0;
    const batchId = this.batchId;
    waiters.sentAt = performance.now(); // see stalled() and record
    waiters.kinds = kinds;
    this.inFlight.set(batchId, waiters);
    let outcome;
    try {
      outcome = this.submit(batchId, new Uint32Array(words), strings.join(''));
    } catch (err) {
      return this.failBatch(batchId, err);
    }
    // A cluster's batch runs on tokio, and its outcome comes on a Promise (never rejected).
    if (typeof outcome.then === 'function') outcome.then(this.handle);
    else this.handle(outcome);
  }

  /**
   * Whether the queue waits for the answer to the batch sent last: one
   * sent less than HOLD_MS ago is usually answered within a round trip, and
   * the calls queued meanwhile (and those its answer leads to) then go out
   * in one write instead of two. Never longer than HOLD_MS behind it, so
   * that a stalled batch holds no one back.
   */
  holds() {
    if (this.holdTimer) return true;
    const last = this.inFlight.get(this.batchId); // the batch sent last, if it is not answered yet
    if (!last || performance.now() - last.sentAt >= HOLD_MS) return false;
    this.holdTimer = setTimeout(this.release, HOLD_MS);
    return true;
  }

  /** Sends what waited (see holds), on the answer it waited for or at HOLD_MS. */
  release() {
    if (this.holdTimer) this.flush(true);
  }

  /** Every call of a batch that could not be submitted fails with `err`. */
  failBatch(batchId, err) {
    const waiters = this.inFlight.get(batchId) || [];
    this.inFlight.delete(batchId);
    if (this.record && waiters.kinds) this.record(waiters.kinds, waiters.sentAt, () => err);
    for (const done of waiters) deliver(done, err);
    this.settled();
  }

  /** Acts on an outcome: its flags first, then each finished batch's results, each to its waiter. */
  handle(outcome) {
    this.onFlags(outcome[0]);
    for (let i = 1; i < outcome.length; ) {
      const waiters = this.inFlight.get(outcome[i]);
      const count = outcome[i + 1];
      this.inFlight.delete(outcome[i]);
      i += 2;
      const first = i;
      if (this.record) this.record(waiters.kinds, waiters.sentAt, (k) => outcome[first + k]);
      for (let k = 0; k < count; k++, i++) deliver(waiters[k], outcome[i]);
    }
    if (this.holdTimer) setImmediate(this.release); // after this turn's other answers and requests
    this.settled();
  }

  /** Called after every outcome (see Store). */
  settled() {}

  /**
   * Whether the store is slow to answer: its oldest batch in flight was sent
   * more than `STALLED_MS` ago (a healthy Redis answers within a millisecond).
   */
  stalled() {
    const oldest = this.inFlight.values().next().value;
    return oldest !== undefined && performance.now() - oldest.sentAt > STALLED_MS;
  }
}

/** How long the queue may wait for the answer to the batch sent last (see `holds()`), in ms. */
const HOLD_MS = 1;

/** How long a batch may wait for its answer before the store counts as slow (see `stalled()`). */
const STALLED_MS = 100;

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

module.exports = { Batches };
