'use strict';

/**
 * The Redis socket of an engine, on Node's own event loop. It only moves
 * bytes and reports events: its Rust twin, the link (src/store/redis/link.rs),
 * decides what to write, pairs replies with calls and fails them when the
 * connection is lost or a call is overdue. Doing the I/O here rather than on a native I/O thread is what makes
 * one call in flight as quick as a JS Redis client's: a reply is read and
 * handed to Rust in the same callback, with no thread hand-off in between.
 *
 * Every native call answers with an outcome; `onOutcome` (the engine) acts on
 * it and calls back `act(flags)` and `settle(busy)`.
 */

const net = require('node:net');
const tls = require('node:tls');
const { ErrorCode, LinkFlag } = require('./native');

const { Output: OUTPUT, Connect: CONNECT, Reset: RESET, Failover: FAILOVER } = LinkFlag;

/** Replies are read into one reusable buffer. */
const READ_BUFFER_BYTES = 64 * 1024;

/** Errors of the network itself; on a TLS socket, any other error is the TLS layer's. */
const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** What the usual TLS failures mean, in the package's options. */
const TLS_HINTS = {
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'the server requires a client certificate (redis.tls.cert and redis.tls.key)',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: 'the server refused the handshake (a client certificate missing or not trusted?)',
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate does not verify against the trusted CAs (redis.tls.ca)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate does not verify against the trusted CAs (redis.tls.ca)",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed and not trusted (redis.tls.ca)",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate is for another name (redis.tls.servername)",
};

/** A socket error as the reason a call failed: its first line, and what it means where that is known. */
function describeError(err) {
  const text = String(err.message).split('\n')[0];
  return TLS_HINTS[err.code] ? `${TLS_HINTS[err.code]}: ${text}` : text;
}

class RedisSocket {
  /**
   * @param {object} native the engine's native half
   * @param {{ host: string, port: number, connectTimeout: number, commandTimeout: number, tls: object | null }} options
   * @param {(outcome: Array) => void} onOutcome
   * @param {(event: string, detail: object) => void} report what operators are told (lib/events.js)
   * @param {number} [node] on a cluster, the primary this socket is to (lib/nodes.js): every native call names it
   */
  constructor(native, options, onOutcome, report, node) {
    this.native = native;
    this.options = options;
    this.node = node;
    this.onOutcome = onOutcome;
    this.report = report;
    this.connectedTo = null; // the open connection's address, once it is open
    this.address = options.sentinel ? { host: null, port: null } : { host: options.host, port: options.port }; // the last one tried
    this.attempting = false; // a connection is being opened
    this.socket = null;
    this.held = false; // ref'd: calls are in flight
    this.readBuffer = null;
    this.connectTimer = null;
    this.attempt = 0; // each connection's number: events of an abandoned one are ignored
    this.deadlineTimer = null;
    this.checkDeadline = this.checkDeadline.bind(this);
  }

  /**
   * The connection as `stats()` lists it: the address last tried (under
   * Sentinel, null until the sentinels named one) and whether it is open.
   */
  status() {
    const state = this.connectedTo ? 'connected' : this.attempting ? 'connecting' : 'disconnected';
    return { ...this.address, state };
  }

  /** Does what an outcome's flags ask, before its results are delivered. */
  act(flags) {
    if (flags & FAILOVER) this.report('failover', { from: this.address, to: this.native.sentinelPrimary });
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
    // Never past TLS: on a TLS socket the descriptor carries ciphertext.
    const direct = !this.options.tls && socket._handle && socket.writableLength === 0 && !socket.connecting;
    const fd = direct ? socket._handle.fd : -1;
    if (fd >= 0 && !this.native.writeOutput(fd, this.node)) return;
    socket.write(this.native.takeOutput(this.node));
  }

  /**
   * Holds the process open only while calls are in flight (an idle
   * connection never does), and watches those calls for an answer in time.
   */
  settle(busy) {
    // Armed while connecting too (a Sentinel lookup has no socket yet): no call waits past commandTimeout.
    if (busy && !this.deadlineTimer) this.armDeadline();
    if (!this.socket) return;
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

  /**
   * Opens a connection, within `connectTimeout` from here: under Sentinel
   * the sentinels are asked where the primary is first (every time: a
   * connection is opened because the last one was lost, and a failover is
   * one way to lose it), then TCP, then TLS if asked for.
   */
  connect() {
    const { connectTimeout, sentinel, host, port } = this.options;
    const attempt = ++this.attempt;
    this.attempting = true;
    let tcpConnected = false;
    // Over TLS, a server that took the connection but not the handshake (no TLS there) is TLS's failure.
    this.connectTimer = setTimeout(() => {
      if (tcpConnected) this.abandon(attempt, `the TLS handshake did not finish within ${connectTimeout} ms`, ErrorCode.Tls);
      else this.abandon(attempt, `could not connect within ${connectTimeout} ms`);
    }, connectTimeout);
    this.held = true; // the calls waiting for this connection hold the process open
    const open = (address) => {
      if (attempt !== this.attempt) return; // given up on already
      const socket = this.open(address, attempt);
      socket.once('connect', () => (tcpConnected = true));
      this.connectTimer.unref(); // from here the socket itself holds the process
    };
    if (!sentinel) return open({ host, port });
    // Never rejected: the sentinels' answer, or an Error with a code.
    this.native.discoverPrimary().then((found) => {
      if (found instanceof Error) this.abandon(attempt, found.message, found.code);
      else open(found);
    });
  }

  /** The socket to `address`, its events wired to the engine. */
  open({ host, port }, attempt) {
    this.address = { host, port };
    const socket = this.options.tls ? this.connectTls(host, port) : this.connectTcp(host, port);
    socket.once(this.options.tls ? 'secureConnect' : 'connect', () => {
      if (socket !== this.socket) return;
      clearTimeout(this.connectTimer);
      this.attempting = false;
      this.connectedTo = { host, port };
      this.report('connect', { host, port });
      this.onOutcome(this.guarded(() => this.native.connected(this.node)));
    });
    const failed = (err) => (this.options.tls && !NETWORK_ERRORS.has(err.code) ? ErrorCode.Tls : ErrorCode.Connection);
    socket.on('error', (err) => this.abandon(attempt, describeError(err), failed(err)));
    socket.on('close', () => this.abandon(attempt, 'the connection closed'));
    this.socket = socket;
    return socket;
  }

  /** The connection of `attempt` failed: its calls fail with `code`, and the next call connects anew. */
  abandon(attempt, reason, code = ErrorCode.Connection) {
    if (attempt !== this.attempt) return; // dropped already
    const connected = this.connectedTo;
    this.drop();
    if (connected) this.report('disconnect', { ...connected, reason, code });
    else this.report('error', Object.assign(new Error(`could not connect to redis: ${reason}`), { code }));
    this.onOutcome(this.native.lost(reason, code, this.node));
  }

  /** Plain TCP: replies are read into one reusable buffer and handed over in the read callback. */
  connectTcp(host, port) {
    if (!this.readBuffer) this.readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const socket = net.connect({
      host,
      port,
      noDelay: true, // a pipeline's tail must not wait for an ACK
      onread: {
        buffer: this.readBuffer,
        callback: (length, buffer) => {
          if (socket === this.socket) this.onOutcome(this.guarded(() => this.native.received(buffer, length, this.node)));
        },
      },
    });
    return socket;
  }

  /** TLS, Node's: the server's certificate verified (Node's CAs, or `ca`), client certificates, SNI. */
  connectTls(host, port) {
    const options = this.options.tls;
    const socket = tls.connect({
      host,
      port,
      ca: options.ca || undefined,
      cert: options.cert || undefined,
      key: options.key || undefined,
      // SNI takes a host name, never an address.
      servername: options.servername || (net.isIP(host) ? undefined : host),
      rejectUnauthorized: options.rejectUnauthorized,
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      if (socket === this.socket) this.onOutcome(this.guarded(() => this.native.received(chunk, chunk.length, this.node)));
    });
    return socket;
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
      return this.native.lost(`internal error: ${err.message}`, ErrorCode.Connection, this.node);
    }
  }

  drop() {
    const socket = this.socket;
    this.socket = null;
    this.attempt++; // whatever the dropped connection still reports is ignored
    this.attempting = false;
    this.connectedTo = null;
    clearTimeout(this.connectTimer);
    if (socket) socket.destroy();
  }

  /** One timer for every call: it wakes when the oldest could be overdue, then re-arms for the next. */
  armDeadline() {
    const ms = this.native.overdueIn(this.node);
    if (ms < 0) return;
    this.deadlineTimer = setTimeout(this.checkDeadline, ms);
    this.deadlineTimer.unref(); // the socket holds the process while calls wait
  }

  checkDeadline() {
    this.deadlineTimer = null;
    const ms = this.native.overdueIn(this.node);
    if (ms < 0) return;
    if (ms > 0) return this.armDeadline();
    // The engine fails what is overdue: calls held back alone, calls on the
    // wire with the connection (RESET), whose replies can no longer be paired.
    this.onOutcome(this.native.expire(this.node));
  }
}

module.exports = { RedisSocket };
