// A Socket: one namespace of a Manager's connection. The API of a Socket.IO client
// socket: on/off/once, emit (with an ack callback), emitWithAck, timeout(ms).emit,
// connect/disconnect, connected, id, auth. Events emitted while offline are buffered
// and sent once connected.

import { Emitter } from './emitter.js';
import { PacketType, RESERVED_EVENTS } from './sio-parser.js';

/**
 * @typedef {object} SocketOptions
 * @property {Record<string, any> | ((cb: (data: Record<string, any>) => void) => void)} [auth]
 * @property {number} [ackTimeout]  default timeout of every ack (ms)
 */

/** The events this class emits itself (listeners see them, they never go to the server). */
const INTERNAL = new Set([...RESERVED_EVENTS]);

export class Socket extends Emitter {
  /**
   * @param {import('./manager.js').Manager} io
   * @param {string} nsp
   * @param {SocketOptions} [opts]
   */
  constructor(io, nsp, opts = {}) {
    super();
    this.io = io;
    this.nsp = nsp;
    this.auth = opts.auth;
    this.ackTimeout = opts.ackTimeout;
    /** @type {string | undefined} */
    this.id = undefined;
    this.connected = false;
    /** Whether this connection restored the previous session's state (connection-state recovery). */
    this.recovered = false;
    /** Packets emitted while offline, sent on connect. @type {any[]} */
    this.sendBuffer = [];
    /** Events received before 'connect' was handled. @type {any[][]} */
    this.receiveBuffer = [];
    /** @type {Map<number, Function & { withError?: boolean }>} */
    this.acks = new Map();
    this._ids = 0;
    /** @type {{ timeout?: number, volatile?: boolean }} */
    this.flags = {};
    /** @type {Function[]} */
    this._anyListeners = [];
    /** @type {Function[] | null} */
    this._subs = null;
    // Connection-state recovery (Socket.IO v5): the server's private session id and the
    // offset of the last event received; sent back in the CONNECT auth on reconnection.
    /** @type {string | undefined} */
    this._pid = undefined;
    /** @type {string | undefined} */
    this._lastOffset = undefined;
    /** @type {number | undefined} last tidewire offset ("@<n>") seen, to drop duplicates */
    this._lastSeq = undefined;
    if (io.opts.autoConnect !== false) this.open();
  }

  /** Whether the socket is subscribed to its manager (connecting, connected or reconnecting). */
  get active() {
    return !!this._subs;
  }

  get disconnected() {
    return !this.connected;
  }

  _subEvents() {
    if (this._subs) return;
    const io = this.io;
    const on = (event, fn) => {
      io.on(event, fn);
      return () => io.off(event, fn);
    };
    this._subs = [
      on('open', () => this._onOpen()),
      on('packet', (p) => this._onPacket(p)),
      on('error', (err) => {
        if (!this.connected) this.emitEvent('connect_error', err);
      }),
      on('close', (reason, err) => this._onClose(reason, err)),
    ];
  }

  /** Connects (also after a disconnect()). */
  connect() {
    if (this.connected) return this;
    this._subEvents();
    if (!this.io._reconnecting) this.io.open();
    if (this.io.readyState === 'open') this._onOpen();
    return this;
  }

  open() {
    return this.connect();
  }

  _onOpen() {
    const send = (data) => {
      const auth = { ...(data ?? {}) };
      if (this._pid) {
        auth.pid = this._pid;
        auth.offset = this._lastOffset;
      }
      this._packet({ type: PacketType.CONNECT, data: auth });
    };
    if (typeof this.auth === 'function') this.auth(send);
    else send(this.auth);
  }

  /** @param {{ type: number, nsp?: string, data?: any, id?: number }} packet */
  _packet(packet) {
    packet.nsp = this.nsp;
    this.io._packet(/** @type {import('./sio-parser.js').SioPacket} */ (packet));
  }

  /** @param {import('./sio-parser.js').SioPacket} packet */
  _onPacket(packet) {
    if (packet.nsp !== this.nsp) return;
    switch (packet.type) {
      case PacketType.CONNECT:
        if (packet.data && typeof packet.data.sid === 'string') {
          this._onConnect(packet.data.sid, packet.data.pid);
        } else {
          this.emitEvent('connect_error', new Error('invalid CONNECT answer from the server (is it Socket.IO v3+?)'));
        }
        break;
      case PacketType.EVENT:
      case PacketType.BINARY_EVENT:
        this._onEvent(packet);
        break;
      case PacketType.ACK:
      case PacketType.BINARY_ACK:
        this._onAck(packet);
        break;
      case PacketType.DISCONNECT:
        this._destroy();
        this._onClose('io server disconnect');
        break;
      case PacketType.CONNECT_ERROR: {
        this._destroy();
        const data = packet.data;
        const message = typeof data === 'string' ? data : data?.message ?? 'connect error';
        const err = new Error(message);
        /** @type {any} */ (err).data = typeof data === 'object' ? data.data : undefined;
        this.emitEvent('connect_error', err);
        break;
      }
      default:
        break;
    }
  }

  /** @param {import('./sio-parser.js').SioPacket} packet */
  _onEvent(packet) {
    const args = /** @type {any[]} */ (packet.data).slice();
    if (packet.id !== undefined) args.push(this._ackFn(packet.id));
    if (this.connected) this._emitEvent(args);
    else this.receiveBuffer.push(args);
  }

  /** @param {any[]} args */
  _emitEvent(args) {
    // With connection-state recovery the server appends the event's offset as last argument.
    const last = args[args.length - 1];
    if (this._pid && typeof last === 'string') {
      // tidewire's offsets ("@<n>") are ordered: one at or below the last seen is a duplicate.
      const seq = /^@(\d+)$/.exec(last);
      if (seq) {
        const n = Number(seq[1]);
        if (this._lastSeq !== undefined && n <= this._lastSeq) return;
        this._lastSeq = n;
      }
      this._lastOffset = last;
    }
    for (const fn of this._anyListeners.slice()) fn.apply(this, args);
    this.emitEvent(args[0], ...args.slice(1));
  }

  /** @param {number} id */
  _ackFn(id) {
    let sent = false;
    return (...args) => {
      if (sent) return;
      sent = true;
      this._packet({ type: PacketType.ACK, id, data: args });
    };
  }

  /** @param {import('./sio-parser.js').SioPacket} packet */
  _onAck(packet) {
    const id = /** @type {number} */ (packet.id);
    const ack = this.acks.get(id);
    if (!ack) return;
    this.acks.delete(id);
    const args = /** @type {any[]} */ (packet.data);
    if (ack.withError) args.unshift(null);
    ack.apply(this, args);
  }

  /**
   * @param {string} sid
   * @param {string} [pid]
   */
  _onConnect(sid, pid) {
    this.id = sid;
    this.recovered = !!(pid && this._pid === pid);
    if (!this.recovered) {
      // A fresh session: offsets from the previous one mean nothing now.
      this._lastOffset = undefined;
      this._lastSeq = undefined;
    }
    this._pid = pid;
    this.connected = true;
    for (const args of this.receiveBuffer) this._emitEvent(args);
    this.receiveBuffer = [];
    const buffered = this.sendBuffer;
    this.sendBuffer = [];
    for (const packet of buffered) this._packet(packet);
    this.emitEvent('connect');
  }

  /**
   * @param {string} reason
   * @param {Error} [description]
   */
  _onClose(reason, description) {
    if (!this.connected && reason !== 'io server disconnect' && reason !== 'io client disconnect') {
      return;
    }
    this.connected = false;
    this.id = undefined;
    this._failSentAcks();
    this.emitEvent('disconnect', reason, description);
  }

  /** Acks that wait for an error (timeout/emitWithAck) and whose packet is gone fail now. */
  _failSentAcks() {
    const buffered = new Set(this.sendBuffer.map((p) => p.id));
    for (const [id, ack] of this.acks) {
      if (buffered.has(id) || !ack.withError) continue;
      this.acks.delete(id);
      ack.call(this, new Error('socket has been disconnected'));
    }
  }

  _destroy() {
    if (this._subs) {
      for (const unsub of this._subs) unsub();
      this._subs = null;
    }
    this.io._destroy(this);
  }

  /** Disconnects this namespace (the connection closes when no namespace uses it). */
  disconnect() {
    if (this.connected) this._packet({ type: PacketType.DISCONNECT });
    this._destroy();
    if (this.connected) this._onClose('io client disconnect');
    return this;
  }

  close() {
    return this.disconnect();
  }

  /**
   * Emits an event; a function as last argument receives the ack.
   * @param {string} event
   * @param {...any} args
   */
  emit(event, ...args) {
    if (INTERNAL.has(event)) throw new Error(`"${event}" is a reserved event name`);
    const flags = this.flags;
    this.flags = {};
    const data = [event, ...args];
    /** @type {import('./sio-parser.js').SioPacket} */
    const packet = { type: PacketType.EVENT, nsp: this.nsp, data };
    if (typeof data[data.length - 1] === 'function') {
      const fn = data.pop();
      const id = this._ids++;
      packet.id = id;
      this._registerAck(id, fn, flags.timeout ?? this.ackTimeout, !!fn.errorFirst);
    }
    if (this.connected) {
      this._packet(packet);
    } else if (!flags.volatile) {
      this.sendBuffer.push(packet);
    }
    return this;
  }

  /** Alias of emit() for message events. */
  send(...args) {
    return this.emit('message', ...args);
  }

  /**
   * @param {number} id
   * @param {Function & { withError?: boolean }} fn
   * @param {number | undefined} timeout
   * @param {boolean} [errorFirst]  fn takes an error first even without a timeout (emitWithAck)
   */
  _registerAck(id, fn, timeout, errorFirst = false) {
    if (timeout === undefined) {
      if (errorFirst) {
        const wrapped = (...args) => fn.apply(this, args);
        wrapped.withError = true;
        this.acks.set(id, wrapped);
      } else {
        this.acks.set(id, fn);
      }
      return;
    }
    const timer = setTimeout(() => {
      this.acks.delete(id);
      this.sendBuffer = this.sendBuffer.filter((p) => p.id !== id);
      fn.call(this, new Error(`ack timed out after ${timeout} ms`));
    }, timeout);
    const wrapped = (...args) => {
      clearTimeout(timer);
      fn.apply(this, args);
    };
    wrapped.withError = true;
    this.acks.set(id, wrapped);
  }

  /**
   * Emits and resolves with the ack's first argument; with timeout(ms) or ackTimeout,
   * rejects with an Error when the ack does not come in time.
   * @param {string} event
   * @param {...any} args
   * @returns {Promise<any>}
   */
  emitWithAck(event, ...args) {
    return new Promise((resolve, reject) => {
      /** @type {Function & { errorFirst?: boolean }} */
      const fn = (err, ...rest) => (err ? reject(err) : resolve(rest[0]));
      fn.errorFirst = true;
      this.emit(event, ...args, fn);
    });
  }

  /**
   * The next emit waits at most `ms` for its ack; its callback gets an Error first argument on timeout.
   * @param {number} ms
   */
  timeout(ms) {
    this.flags.timeout = ms;
    return this;
  }

  /** Accepted for Socket.IO compatibility; compression is the transport's business here. */
  compress(_enabled) {
    return this;
  }

  /** The next emit is dropped when not connected instead of buffered. */
  get volatile() {
    this.flags.volatile = true;
    return this;
  }

  /** @param {Function} fn */
  onAny(fn) {
    this._anyListeners.push(fn);
    return this;
  }

  /** @param {Function} [fn] */
  offAny(fn) {
    this._anyListeners = fn ? this._anyListeners.filter((f) => f !== fn) : [];
    return this;
  }

  listenersAny() {
    return this._anyListeners.slice();
  }

  // Emitter#emit is the Socket.IO emit here; local events go through emitEvent.
}
