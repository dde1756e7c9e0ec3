// The Manager: one Engine.IO connection shared by the namespaces (Sockets) of a server,
// reconnection with exponential backoff and jitter, and the Socket.IO packet codec.

import { Emitter } from './emitter.js';
import { EngineSocket } from './engine.js';
import { Backoff } from './backoff.js';
import { Decoder, encode } from './sio-parser.js';
import { Socket } from './socket.js';

/**
 * @typedef {import('./engine.js').EngineOptions & {
 *   reconnection?: boolean,
 *   reconnectionAttempts?: number,
 *   reconnectionDelay?: number,
 *   reconnectionDelayMax?: number,
 *   randomizationFactor?: number,
 *   timeout?: number,
 *   autoConnect?: boolean,
 * }} ManagerOptions
 */

export class Manager extends Emitter {
  /**
   * @param {string} [uri]  the server (default: this page's origin)
   * @param {ManagerOptions} [opts]
   */
  constructor(uri, opts = {}) {
    super();
    if (typeof uri === 'object' && uri !== null) {
      opts = uri;
      uri = undefined;
    }
    this.uri = uri ?? globalThis.location?.origin;
    if (!this.uri) throw new Error('tidewire: a server URL is required outside a browser page');
    this.opts = opts;
    /** @type {Record<string, Socket>} */
    this.nsps = {};
    this._reconnection = opts.reconnection !== false;
    this._reconnectionAttempts = opts.reconnectionAttempts ?? Infinity;
    this.backoff = new Backoff({
      min: opts.reconnectionDelay ?? 1000,
      max: opts.reconnectionDelayMax ?? 5000,
      jitter: opts.randomizationFactor ?? 0.5,
    });
    this._timeout = opts.timeout ?? 20000;
    /** @type {'closed' | 'opening' | 'open'} */
    this._readyState = 'closed';
    /** @type {EngineSocket | null} */
    this.engine = null;
    this._reconnecting = false;
    this.skipReconnect = false;
    this._decoder = new Decoder();
    this._decoder.on('decoded', (packet) => this.emitEvent('packet', packet));
    /** @type {import('./engine.js').TransportEvent | null} */
    this.lastTransportEvent = null;
    if (opts.autoConnect !== false) this.open();
  }

  /** The current transport: 'websocket', 'sse', 'polling', or null when not connected. */
  get transport() {
    return this.engine?.transportName ?? null;
  }

  get readyState() {
    return this._readyState;
  }

  reconnection(v) {
    if (v === undefined) return this._reconnection;
    this._reconnection = !!v;
    return this;
  }

  reconnectionAttempts(v) {
    if (v === undefined) return this._reconnectionAttempts;
    this._reconnectionAttempts = v;
    return this;
  }

  reconnectionDelay(v) {
    if (v === undefined) return this.backoff.min;
    this.backoff.setMin(v);
    return this;
  }

  reconnectionDelayMax(v) {
    if (v === undefined) return this.backoff.max;
    this.backoff.setMax(v);
    return this;
  }

  randomizationFactor(v) {
    if (v === undefined) return this.backoff.jitter;
    this.backoff.setJitter(v);
    return this;
  }

  timeout(v) {
    if (v === undefined) return this._timeout;
    this._timeout = v;
    return this;
  }

  /**
   * Opens the Engine.IO connection; `fn(err?)` is called once it is open or failed.
   * @param {(err?: Error) => void} [fn]
   */
  open(fn) {
    if (this._readyState !== 'closed') {
      if (fn) fn();
      return this;
    }
    this.skipReconnect = false;
    const engine = new EngineSocket(this.uri, this.opts);
    this.engine = engine;
    this._readyState = 'opening';
    let done = false;
    const settle = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (fn) fn(err);
    };
    engine.on('transport', (ev) => {
      this.lastTransportEvent = ev;
      this.emitEvent('transport', ev);
    });
    engine.on('transportFailed', (ev) => this.emitEvent('transportFailed', ev));
    engine.on('upgradeError', (err) => this.emitEvent('upgradeError', err));
    engine.on('open', () => {
      settle();
      this._readyState = 'open';
      this.emitEvent('open');
    });
    engine.on('message', (data) => {
      try {
        this._decoder.add(data);
      } catch (err) {
        // Malformed input from the server: drop the connection (and reconnect).
        this._onEngineClose('parse error', /** @type {Error} */ (err));
      }
    });
    engine.on('ping', () => this.emitEvent('ping'));
    engine.on('close', (reason, err) => {
      if (this.engine !== engine) return;
      if (this._readyState === 'opening') {
        const error = err ?? new Error(reason === 'forced close' ? 'timeout' : reason);
        this.engine = null;
        this._cleanup();
        this._readyState = 'closed';
        this.emitEvent('error', error);
        settle(error);
        if (!fn) this._maybeReconnectOnOpen();
        return;
      }
      this._onEngineClose(reason, err);
    });
    let timer;
    if (this._timeout > 0 && Number.isFinite(this._timeout)) {
      timer = setTimeout(() => {
        if (this._readyState !== 'opening' || this.engine !== engine) return;
        engine.close(); // emits close while opening: reported as an error above
      }, this._timeout);
    }
    engine.open();
    return this;
  }

  /** Alias of open(). */
  connect(fn) {
    return this.open(fn);
  }

  _maybeReconnectOnOpen() {
    if (!this._reconnecting && this._reconnection && this.backoff.attempts === 0) this.reconnect();
  }

  /**
   * The Socket for namespace `nsp` (one per namespace per manager).
   * @param {string} nsp
   * @param {import('./socket.js').SocketOptions} [opts]
   */
  socket(nsp, opts = {}) {
    let socket = this.nsps[nsp];
    if (!socket) {
      socket = new Socket(this, nsp, opts);
      this.nsps[nsp] = socket;
    } else if (this.opts.autoConnect !== false && !socket.active) {
      socket.connect();
    }
    return socket;
  }

  /** Called by a Socket that disconnects: closes the connection once no socket is active. */
  _destroy(_socket) {
    for (const s of Object.values(this.nsps)) if (s.active) return;
    this._close();
  }

  /**
   * Sends a Socket.IO packet (several Engine.IO messages when it carries binary).
   * @param {import('./sio-parser.js').SioPacket} packet
   */
  _packet(packet) {
    if (!this.engine) return;
    for (const part of encode(packet)) this.engine.send(part);
  }

  _cleanup() {
    this._decoder.destroy();
  }

  /** Closes the connection for good (no reconnection). */
  _close() {
    this.skipReconnect = true;
    this._reconnecting = false;
    clearTimeout(this._reconnectTimer);
    const engine = this.engine;
    if (this._readyState === 'closed' && !engine) return;
    this._onEngineClose('forced close');
    engine?.close();
  }

  disconnect() {
    this._close();
  }

  /**
   * @param {string} reason
   * @param {Error} [err]
   */
  _onEngineClose(reason, err) {
    const engine = this.engine;
    if (!engine) return;
    this.engine = null;
    this._cleanup();
    this._readyState = 'closed';
    engine.close();
    this.backoff.reset();
    this.emitEvent('close', reason, err);
    if (this._reconnection && !this.skipReconnect) this.reconnect();
  }

  /** Schedules the next reconnection attempt (exponential backoff with jitter). */
  reconnect() {
    if (this._reconnecting || this.skipReconnect) return this;
    if (this.backoff.attempts >= this._reconnectionAttempts) {
      this.backoff.reset();
      this.emitEvent('reconnect_failed');
      this._reconnecting = false;
      return this;
    }
    const delay = this.backoff.duration();
    this._reconnecting = true;
    this._reconnectTimer = setTimeout(() => {
      if (this.skipReconnect) return;
      this.emitEvent('reconnect_attempt', this.backoff.attempts);
      if (this.skipReconnect) return;
      this.open((err) => {
        if (err) {
          this._reconnecting = false;
          this.reconnect();
          this.emitEvent('reconnect_error', err);
        } else {
          const attempt = this.backoff.attempts;
          this._reconnecting = false;
          this.backoff.reset();
          this.emitEvent('reconnect', attempt);
        }
      });
    }, delay);
    this.emitEvent('reconnect_scheduled', { delay, attempt: this.backoff.attempts });
    return this;
  }
}
