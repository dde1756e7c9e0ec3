// A loopback TCP proxy that breaks connections on command (issue #7's fault
// injection). One FaultProxy per client: it listens on 127.0.0.1 (a free port)
// and forwards every connection it accepts to the server. Since the HTTP
// transports open several TCP connections at once (a long-poll GET and a POST,
// keep-alive pools, an SSE stream), every fault applies to all the current
// connections of that proxy, i.e. of that client.
//
// Faults:
// - rst():      the client side is reset (RST), the upstream side destroyed
// - fin():      both sides are ended (FIN), as a clean close
// - halfOpen(): the client side is reset; the upstream side stays open and
//               silent: nothing more is sent to the server, nothing closes it
//               (what the server then reads from it is discarded). The server
//               can only find out through its heartbeat.
// - stall(ms):  nothing moves in either direction for ms, then it all resumes
// - refuse(ms): new connections are accepted and reset at once for ms
// - armResumeCut(): the next reconnection is cut in the middle of its
//               handshake: as soon as the server's Socket.IO CONNECT reply
//               (`40{"sid"`) goes through (either before that chunk is
//               forwarded or up to 50 ms after), or 100 ms after the first new
//               connection at the latest.
//
// No dependencies (node:net only). Not a test file.

import { EventEmitter } from 'node:events';
import net from 'node:net';

/** Deterministic PRNG (mulberry32): a function returning floats in [0, 1). */
export function makeRng(seed) {
  let a = seed >>> 0;
  const rng = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  /** Integer in [lo, hi]. */
  rng.int = (lo, hi) => lo + Math.floor(rng() * (hi - lo + 1));
  /** One of the items. */
  rng.pick = (items) => items[Math.floor(rng() * items.length)];
  return rng;
}

/** Derives an independent seed for stream `index` of `seed`. */
export function subSeed(seed, index) {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const CONNECT_REPLY = Buffer.from('40{"sid"');

export const FAULT_KINDS = ['rst', 'fin', 'halfOpen', 'stall', 'refuse', 'resume'];

/**
 * One connection through the proxy.
 * state: 'live' | 'halfOpen' | 'closed'.
 */
class Conn {
  constructor(proxy, client, upstream) {
    this.proxy = proxy;
    this.client = client;
    this.upstream = upstream;
    this.state = 'live';
    this.openedAt = Date.now();
    this.stalled = false;
    this.upBlocked = false; // upstream's write buffer is full: stop reading the client
    this.downBlocked = false; // client's write buffer is full: stop reading upstream
    this.bytesUp = 0;
    this.bytesDown = 0;
    this.discarded = 0; // bytes the server sent into a half-open connection
  }

  flow() {
    if (this.state === 'live') {
      if (this.stalled || this.upBlocked) this.client.pause();
      else this.client.resume();
      if (this.stalled || this.downBlocked) this.upstream.pause();
      else this.upstream.resume();
    } else if (this.state === 'halfOpen') {
      this.upstream.resume(); // read and discard
    }
  }
}

export class FaultProxy extends EventEmitter {
  /**
   * @param {{ targetHost?: string, targetPort: number, name?: string, rng?: () => number }} opts
   */
  constructor({ targetHost = '127.0.0.1', targetPort, name = 'proxy', rng = makeRng(1) }) {
    super();
    this.targetHost = targetHost;
    this.targetPort = targetPort;
    this.name = name;
    this.rng = rng;
    /** @type {Set<Conn>} every connection not fully closed (half-open ones included) */
    this.conns = new Set();
    this.refuseUntil = 0;
    /** @type {null | { armedAt: number, timer?: NodeJS.Timeout, mode: 'before' | 'after' }} */
    this.resumeWatch = null;
    this.cuts = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0]));
    this.stats = { accepted: 0, refused: 0, connsCut: 0, resumeCutOnReply: 0, resumeCutOnTimer: 0 };
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => this._accept(client));
  }

  /** Starts listening on 127.0.0.1 (port 0: a free one); resolves with the port. */
  async listen(port = 0) {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = this.server.address().port;
    this.url = `http://127.0.0.1:${this.port}`;
    return this.port;
  }

  /** Connections the client still has (live: forwarding). */
  liveConns() {
    return [...this.conns].filter((c) => c.state === 'live');
  }

  _accept(client) {
    if (Date.now() < this.refuseUntil) {
      this.stats.refused++;
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    this.stats.accepted++;
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort, allowHalfOpen: true, noDelay: true });
    const conn = new Conn(this, client, upstream);
    this.conns.add(conn);

    client.on('data', (chunk) => {
      if (conn.state !== 'live') return;
      conn.bytesUp += chunk.length;
      if (!upstream.write(chunk)) {
        conn.upBlocked = true;
        conn.flow();
      }
    });
    upstream.on('drain', () => {
      conn.upBlocked = false;
      conn.flow();
    });
    upstream.on('data', (chunk) => {
      if (conn.state === 'halfOpen') {
        conn.discarded += chunk.length;
        return;
      }
      if (conn.state !== 'live') return;
      const watch = this.resumeWatch;
      if (watch && conn.openedAt >= watch.armedAt && chunk.includes(CONNECT_REPLY)) {
        this.resumeWatch = null;
        clearTimeout(watch.timer);
        this.stats.resumeCutOnReply++;
        if (watch.mode === 'before') {
          this._cutAll('rst');
          return;
        }
        setTimeout(() => this._cutAll('rst'), this.rng.int(0, 50)).unref();
      }
      conn.bytesDown += chunk.length;
      if (!client.write(chunk)) {
        conn.downBlocked = true;
        conn.flow();
      }
    });
    client.on('drain', () => {
      conn.downBlocked = false;
      conn.flow();
    });

    // Orderly closes go through; errors reset the other side.
    client.on('end', () => {
      if (conn.state === 'live') upstream.end();
    });
    upstream.on('end', () => {
      if (conn.state === 'live') client.end();
      else if (conn.state === 'halfOpen') upstream.end(); // the server gave up on it
    });
    client.on('error', () => {
      if (conn.state === 'live') {
        conn.state = 'closed';
        upstream.destroy();
      }
    });
    upstream.on('error', () => {
      if (conn.state === 'live') {
        conn.state = 'closed';
        client.resetAndDestroy();
      }
    });
    const onClose = () => {
      if (conn.state === 'halfOpen') {
        if (upstream.destroyed) this.conns.delete(conn);
        return;
      }
      if (client.destroyed && upstream.destroyed) this.conns.delete(conn);
      else if (client.destroyed && !upstream.destroyed && conn.state === 'live') upstream.end();
    };
    client.on('close', onClose);
    upstream.on('close', () => {
      if (!client.destroyed && conn.state === 'live') client.destroy();
      onClose();
    });

    const watch = this.resumeWatch;
    if (watch && !watch.timer) {
      // The first connection of the reconnection: cut at the latest 100 ms later.
      watch.timer = setTimeout(() => {
        if (this.resumeWatch === watch) {
          this.resumeWatch = null;
          this.stats.resumeCutOnTimer++;
          this._cutAll('rst');
        }
      }, this.rng.int(20, 100));
      watch.timer.unref();
    }
    this.emit('connection', conn);
  }

  _cutAll(how) {
    for (const conn of this.liveConns()) {
      this.stats.connsCut++;
      if (how === 'rst') {
        conn.state = 'closed';
        conn.client.on('error', () => {});
        conn.client.resetAndDestroy();
        conn.upstream.destroy();
      } else if (how === 'fin') {
        conn.state = 'closed';
        conn.client.end();
        conn.upstream.end();
        // Both sides ended: make sure nothing lingers if a peer never answers with its FIN.
        setTimeout(() => {
          conn.client.destroy();
          conn.upstream.destroy();
        }, 2_000).unref();
      } else if (how === 'halfOpen') {
        conn.state = 'halfOpen';
        conn.client.on('error', () => {});
        conn.client.resetAndDestroy();
        conn.flow();
      }
    }
  }

  /** Resets every current connection (client side RST, upstream destroyed). */
  rst() {
    this.cuts.rst++;
    this._cutAll('rst');
  }

  /** Ends every current connection on both sides (FIN). */
  fin() {
    this.cuts.fin++;
    this._cutAll('fin');
  }

  /** Resets the client side of every current connection and leaves the server side open and silent. */
  halfOpen() {
    this.cuts.halfOpen++;
    this._cutAll('halfOpen');
  }

  /** Freezes every current connection in both directions for `ms`. */
  async stall(ms) {
    this.cuts.stall++;
    const conns = this.liveConns();
    for (const conn of conns) {
      conn.stalled = true;
      conn.flow();
    }
    await sleep(ms);
    for (const conn of conns) {
      conn.stalled = false;
      conn.flow();
    }
  }

  /** Resets every current connection and refuses (accept, then reset) new ones for `ms`. */
  async refuse(ms) {
    this.cuts.refuse++;
    this.refuseUntil = Date.now() + ms;
    this._cutAll('rst');
    await sleep(ms);
  }

  /** Arms a cut of the next reconnection's handshake (see the top of the file). */
  armResumeCut() {
    if (this.resumeWatch) clearTimeout(this.resumeWatch.timer);
    this.resumeWatch = { armedAt: Date.now(), mode: this.rng() < 0.5 ? 'before' : 'after' };
  }

  /** Resets every current connection and cuts the reconnection's handshake too. */
  resumeCut() {
    this.cuts.resume++;
    this.armResumeCut();
    this._cutAll('rst');
  }

  /** Total faults injected. */
  totalCuts() {
    return Object.values(this.cuts).reduce((a, b) => a + b, 0);
  }

  /** Stops listening and destroys every connection (half-open ones included). */
  async close() {
    if (this.resumeWatch) clearTimeout(this.resumeWatch.timer);
    this.resumeWatch = null;
    for (const conn of this.conns) {
      conn.state = 'closed';
      conn.client.destroy();
      conn.upstream.destroy();
    }
    this.conns.clear();
    await new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
