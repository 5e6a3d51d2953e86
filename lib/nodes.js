'use strict';

/**
 * A cluster's sockets, one per primary, on Node's own event loop: the
 * JavaScript half of src/store/redis/nodes.rs. Each is a RedisSocket
 * (lib/link.js) to one primary, made when the engine first sends it a call;
 * the engine says which sockets have something to do (`nodeActions()`), and
 * hands over, through `later()`, the batches that finish on redis-rs's side
 * (calls a node sent elsewhere, run again there).
 */

const { LinkFlag } = require('./native');
const { RedisSocket } = require('./link');

const { Nodes: NODES, Later: LATER } = LinkFlag;

class NodeSockets {
  /**
   * @param {object} native the engine's native half
   * @param {(outcome: Array) => void} onOutcome
   * @param {(event: string, detail: object) => void} report what operators are told
   */
  constructor(native, onOutcome, report) {
    this.native = native;
    this.onOutcome = onOutcome;
    // The topology tells operators of primaries up and down (lib/store.js):
    // the sockets only add what it cannot see, a connection that failed.
    this.report = (event, detail) => event === 'error' && report(event, detail);
    this.sockets = [];
  }

  /** Does what an outcome's flags ask: of the sockets named, and of the batches finishing later. */
  act(flags) {
    if (flags & LATER) this.native.later().then(this.onOutcome);
    if (!(flags & NODES)) return;
    const actions = this.native.nodeActions();
    for (let i = 0; i < actions.length; i += 2) this.socket(actions[i]).act(actions[i + 1]);
  }

  socket(node) {
    let socket = this.sockets[node];
    if (!socket) {
      socket = new RedisSocket(this.native, this.native.nodeSocketOptions(node), this.onOutcome, this.report, node);
      this.sockets[node] = socket;
    }
    return socket;
  }

  /** See RedisSocket.settle: while calls are in flight, every socket holds the process and watches its calls. */
  settle(busy) {
    for (const socket of this.sockets) if (socket) socket.settle(busy);
  }

  close() {
    for (const socket of this.sockets) if (socket) socket.close();
  }
}

module.exports = { NodeSockets };
