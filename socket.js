'use strict';

/**
 * The Redis socket of an engine, on Node's own event loop. It only moves
 * bytes and reports events: the engine's link (src/store/link.rs) decides
 * what to write, pairs replies with calls and fails them when the connection
 * is lost. Doing the I/O here rather than on a native I/O thread is what makes
 * one call in flight as quick as a JS Redis client's: a reply is read and
 * handed to Rust in the same callback, with no thread hand-off in between.
 *
 * Every native call answers with an outcome; `onOutcome` (the engine) acts on
 * it and calls back `act(flags)` and `settle(busy)`.
 */

const net = require('node:net');

// Bits of an outcome's flags, as in src/store/link.rs.
const OUTPUT = 1; // bytes to write: takeOutput()
const CONNECT = 2; // work waits for a connection: open one
const RESET = 4; // the connection cannot be trusted: destroy it

/** Replies are read into one reusable buffer. */
const READ_BUFFER_BYTES = 64 * 1024;

class RedisSocket {
  /**
   * @param {object} native the engine's native half
   * @param {{ host: string, port: number, connectTimeout: number, commandTimeout: number }} options
   * @param {(outcome: Array) => void} onOutcome
   */
  constructor(native, options, onOutcome) {
    this.native = native;
    this.options = options;
    this.onOutcome = onOutcome;
    this.socket = null;
    this.held = false; // ref'd: calls are in flight
    this.readBuffer = null;
    this.connectTimer = null;
    this.deadlineTimer = null;
    this.checkDeadline = this.checkDeadline.bind(this);
  }

  /** Does what an outcome's flags ask, before its results are delivered. */
  act(flags) {
    if (flags & RESET) this.drop();
    if (flags & CONNECT) this.connect();
    if (flags & OUTPUT && this.socket) this.write();
  }

  /**
   * Straight to the descriptor when nothing of Node's waits to be written
   * (no Buffer, no stream machinery per batch); whatever the kernel does not
   * take at once, and every write on a platform without descriptors, goes
   * through `socket.write`, which keeps the order and reports errors.
   */
  write() {
    const socket = this.socket;
    const fd = socket._handle && socket.writableLength === 0 && !socket.connecting ? socket._handle.fd : -1;
    if (fd >= 0 && !this.native.writeOutput(fd)) return;
    socket.write(this.native.takeOutput());
  }

  /**
   * Holds the process open only while calls are in flight (an idle
   * connection never does), and watches those calls for an answer in time.
   */
  settle(busy) {
    if (!this.socket) return;
    if (busy && !this.deadlineTimer) this.armDeadline();
    if (busy !== this.held) {
      if (busy) this.socket.ref();
      else this.socket.unref();
      this.held = busy;
    }
  }

  /** Closes the connection now: for close(), once every call has its answer. */
  close() {
    this.drop();
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
  }

  connect() {
    const { host, port, connectTimeout } = this.options;
    if (!this.readBuffer) this.readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const socket = net.connect({
      host,
      port,
      noDelay: true, // a pipeline's tail must not wait for an ACK
      onread: {
        buffer: this.readBuffer,
        callback: (length, buffer) => {
          if (socket === this.socket) this.onOutcome(this.guarded(() => this.native.received(buffer, length)));
        },
      },
    });
    const gone = (reason) => {
      if (socket !== this.socket) return; // dropped already
      this.drop();
      this.onOutcome(this.native.lost(reason, false));
    };
    socket.once('connect', () => {
      if (socket !== this.socket) return;
      clearTimeout(this.connectTimer);
      this.onOutcome(this.guarded(() => this.native.connected()));
    });
    socket.on('error', (err) => gone(err.message));
    socket.on('close', () => gone('the connection closed'));
    this.socket = socket;
    this.held = true; // a new socket is ref'd, and it opens because calls wait
    this.connectTimer = setTimeout(gone, connectTimeout, `could not connect within ${connectTimeout} ms`);
    this.connectTimer.unref();
  }

  /**
   * A native call that throws (a bug: the engine turns its panics into
   * errors) must not strand the calls waiting on this connection: they fail,
   * and the next call starts afresh.
   */
  guarded(call) {
    try {
      return call();
    } catch (err) {
      this.drop();
      return this.native.lost(`internal error: ${err.message}`, false);
    }
  }

  drop() {
    const socket = this.socket;
    this.socket = null;
    clearTimeout(this.connectTimer);
    if (socket) socket.destroy();
  }

  /** One timer for every call: it wakes when the oldest could be overdue, then re-arms for the next. */
  armDeadline() {
    const ms = this.native.overdueIn();
    if (ms < 0) return;
    this.deadlineTimer = setTimeout(this.checkDeadline, ms);
    this.deadlineTimer.unref(); // the socket holds the process while calls wait
  }

  checkDeadline() {
    this.deadlineTimer = null;
    const ms = this.native.overdueIn();
    if (ms < 0) return;
    if (ms > 0) return this.armDeadline();
    // Its reply may still come, but after the ones that follow it: nothing on
    // this connection can be paired with its call any more.
    this.drop();
    this.onOutcome(this.native.lost(`redis did not answer within ${this.options.commandTimeout} ms`, true));
  }
}

module.exports = { RedisSocket };
