// The Engine.IO v4 client socket: transport negotiation (WebSocket, then SSE, then
// polling, each with its own timeout), handshake, heartbeat, write buffering, and
// upgrading an SSE or polling session to WebSocket in the background.

import { Emitter } from './emitter.js';
import { encodePacket, utf8Length } from './engine-parser.js';
import { WebSocketTransport } from './transports/websocket.js';
import { SseTransport } from './transports/sse.js';
import { PollingTransport } from './transports/polling.js';
import { pageTransportMemory } from './transport-memory.js';

export const DEFAULT_TRANSPORTS = Object.freeze(['websocket', 'sse', 'polling']);
export const DEFAULT_TRANSPORT_TIMEOUTS = Object.freeze({ websocket: 3000, sse: 4000, polling: 10000 });

/** @type {Record<string, any>} */
export const TRANSPORTS = { websocket: WebSocketTransport, sse: SseTransport, polling: PollingTransport };

/**
 * @typedef {object} EngineOptions
 * @property {string} [path]   default '/socket.io/'
 * @property {Record<string, string>} [query]
 * @property {string[]} [transports]  default ['websocket', 'sse', 'polling'], tried in this order
 * @property {{ websocket?: number, sse?: number, polling?: number }} [transportTimeouts]
 * @property {boolean} [upgrade]  upgrade SSE/polling sessions to WebSocket (default true)
 * @property {number} [upgradeProbeDelay]  wait before probing WebSocket again after it failed (default 15000 ms; doubles up to 5 min)
 * @property {boolean} [rememberUpgrade]  use the remembered fallback (default true)
 * @property {any} [WebSocket]
 * @property {typeof fetch} [fetch]
 * @property {Record<string, string>} [extraHeaders]
 * @property {boolean} [withCredentials]
 * @property {import('./transport-memory.js').TransportMemory} [transportMemory]
 * @property {Record<string, any>} [transportFactories]  replaces transport classes (tests)
 */

/**
 * @typedef {{ name: string, reason: string, previous?: string, failures?: { name: string, reason: string }[] }} TransportEvent
 */

export class EngineSocket extends Emitter {
  /**
   * @param {string} url  the server, e.g. http://localhost:3000 (its path is ignored; see opts.path)
   * @param {EngineOptions} [opts]
   */
  constructor(url, opts = {}) {
    super();
    const base = new URL(url, globalThis.location?.href);
    let path = opts.path ?? '/socket.io/';
    if (!path.startsWith('/')) path = '/' + path;
    if (!path.endsWith('/')) path += '/';
    /** The Engine.IO endpoint. */
    this.endpoint = `${base.protocol}//${base.host}${path}`;
    this.opts = opts;
    this.transportNames = (opts.transports ?? DEFAULT_TRANSPORTS).filter((n) => n in this._factories());
    if (this.transportNames.length === 0) throw new Error('no known transport in options.transports');
    this.timeouts = { ...DEFAULT_TRANSPORT_TIMEOUTS, ...(opts.transportTimeouts ?? {}) };
    this.memory = opts.transportMemory ?? pageTransportMemory;
    /** @type {'closed' | 'opening' | 'open' | 'closing'} */
    this.readyState = 'closed';
    /** @type {string | undefined} */
    this.id = undefined;
    /** @type {any} */
    this.transport = null;
    /** @type {any} */
    this.handshake = null;
    /** @type {import('./engine-parser.js').EnginePacket[]} */
    this.writeBuffer = [];
    this._upgrading = false;
    this._probeDelay = opts.upgradeProbeDelay ?? 15000;
    /** @type {any} */
    this._probe = null;
    /** @type {any[]} */
    this._candidates = [];
    this._timers = new Set();
  }

  _factories() {
    return { ...TRANSPORTS, ...(this.opts.transportFactories ?? {}) };
  }

  /** The current transport's name ('websocket', 'sse', 'polling'), or null. */
  get transportName() {
    return this.transport ? this.transport.name : null;
  }

  /** The id of the last SSE event received in this session ('' when not on SSE). */
  get lastEventId() {
    return this.transport?.lastEventId ?? '';
  }

  /** @param {string} name @param {string | undefined} sid */
  _create(name, sid) {
    const Factory = this._factories()[name];
    return new Factory({
      url: this.endpoint,
      query: this.opts.query,
      sid,
      WebSocket: this.opts.WebSocket,
      fetch: this.opts.fetch,
      extraHeaders: this.opts.extraHeaders,
      credentials: this.opts.withCredentials ? 'include' : undefined,
    });
  }

  /**
   * @param {(value?: any) => void} fn
   * @param {number} ms
   */
  _setTimer(fn, ms) {
    const t = setTimeout(() => {
      this._timers.delete(t);
      fn();
    }, ms);
    this._timers.add(t);
    return t;
  }

  /** @param {any} t */
  _clearTimer(t) {
    if (t === undefined || t === null) return;
    clearTimeout(t);
    this._timers.delete(t);
  }

  /** Opens the session, negotiating the transport. */
  open() {
    if (this.readyState !== 'closed') return this;
    this.readyState = 'opening';
    this._negotiate();
    return this;
  }

  async _negotiate() {
    const server = this.endpoint;
    let order = this.transportNames.slice();
    let firstReason = 'first choice';
    const remembered = this.opts.rememberUpgrade === false ? null : this.memory.fallback(server);
    if (remembered && order[0] === 'websocket' && order.includes(remembered)) {
      order = [remembered, ...order.filter((n) => n !== remembered)];
      firstReason = 'remembered fallback';
    }
    /** @type {{ name: string, reason: string }[]} */
    const failures = [];
    for (const name of order) {
      if (this.readyState !== 'opening') return;
      const result = await this._attempt(name);
      if (/** @type {string} */ (this.readyState) !== 'opening') {
        result.transport?.close();
        return;
      }
      if (result.ok) {
        const wsFailed = failures.some((f) => f.name === 'websocket');
        if (name === 'websocket') this.memory.markWebsocketWorked(server);
        else if (wsFailed) this.memory.rememberFallback(server, name);
        const reason = failures.length === 0 ? firstReason : failures[failures.length - 1].reason;
        this._adopt(result.transport, result.handshake);
        this.emitEvent('transport', { name, reason, failures: failures.slice() });
        if (/** @type {string} */ (this.readyState) === 'open') {
          // WebSocket was tried and failed just now: probe again later; otherwise right away.
          this._scheduleProbe(wsFailed ? this._probeDelay : 0);
        }
        return;
      }
      const { reason } = /** @type {{ reason: string }} */ (result);
      failures.push({ name, reason });
      this.emitEvent('transportFailed', { name, reason });
    }
    const err = new Error(`no transport could connect: ${failures.map((f) => f.reason).join('; ')}`);
    /** @type {any} */ (err).failures = failures;
    this._onClose('transport error', err);
  }

  /**
   * Opens `name` and waits (at most its timeout) for the open packet.
   * @param {string} name
   * @returns {Promise<{ ok: true, transport: any, handshake: any } | { ok: false, reason: string, transport?: any }>}
   */
  _attempt(name) {
    return new Promise((resolve) => {
      const transport = this._create(name, undefined);
      this._candidates.push(transport);
      let settled = false;
      const finish = (result) => {
        if (settled) return;
        settled = true;
        this._clearTimer(timer);
        transport.off('packet', onPacket);
        transport.off('close', onClose);
        this._candidates = this._candidates.filter((t) => t !== transport);
        if (!result.ok) transport.close();
        resolve(result);
      };
      const onPacket = (packet) => {
        if (packet.type !== 'open') {
          finish({ ok: false, reason: `${name} failed: expected the open packet, got ${packet.type}` });
          return;
        }
        let handshake;
        try {
          handshake = JSON.parse(/** @type {string} */ (packet.data));
          if (typeof handshake.sid !== 'string') throw new Error('no sid');
        } catch (err) {
          finish({ ok: false, reason: `${name} failed: invalid handshake (${/** @type {Error} */ (err).message})` });
          return;
        }
        // Adopt synchronously so packets following the open packet find the engine's listeners.
        transport.sid = handshake.sid;
        finish({ ok: true, transport, handshake });
      };
      const onClose = ({ error }) => {
        finish({ ok: false, reason: `${name} failed: ${error?.message ?? 'closed'}` });
      };
      transport.on('packet', onPacket);
      transport.on('close', onClose);
      const ms = this.timeouts[name] ?? 10000;
      const timer = this._setTimer(() => {
        const reason = name === 'sse' ? 'sse timed out (buffering proxy?)' : `${name} timed out`;
        finish({ ok: false, reason });
      }, ms);
      transport.open();
    });
  }

  /**
   * Makes `transport` the session's transport after the handshake.
   * @param {any} transport
   * @param {any} handshake
   */
  _adopt(transport, handshake) {
    this.handshake = handshake;
    this.id = handshake.sid;
    this.pingInterval = Number(handshake.pingInterval) || 25000;
    this.pingTimeout = Number(handshake.pingTimeout) || 20000;
    this.maxPayload = Number(handshake.maxPayload) || 0;
    this.upgrades = Array.isArray(handshake.upgrades) ? handshake.upgrades : [];
    this._setTransport(transport);
    this.readyState = 'open';
    this._resetPingTimer();
    this.emitEvent('open', handshake);
    this._flush();
  }

  /** @param {any} transport */
  _setTransport(transport) {
    if (this.transport) this._detach(this.transport);
    this.transport = transport;
    transport.on('packet', (this._onPacketBound = (p) => this._onPacket(p)));
    transport.on('drain', (this._onDrainBound = () => this._onDrain()));
    transport.on('close', (this._onTransportCloseBound = ({ reason, error }) => this._onClose(reason, error)));
  }

  /** @param {any} transport */
  _detach(transport) {
    transport.off('packet', this._onPacketBound);
    transport.off('drain', this._onDrainBound);
    transport.off('close', this._onTransportCloseBound);
  }

  _resetPingTimer() {
    this._clearTimer(this._pingTimer);
    this._pingTimer = this._setTimer(() => this._onClose('ping timeout'), this.pingInterval + this.pingTimeout);
  }

  /** @param {import('./engine-parser.js').EnginePacket} packet */
  _onPacket(packet) {
    if (this.readyState !== 'open' && this.readyState !== 'closing') return;
    this.emitEvent('packet', packet);
    switch (packet.type) {
      case 'ping':
        this._resetPingTimer();
        this._write({ type: 'pong', data: /** @type {string|undefined} */ (packet.data) });
        this.emitEvent('ping');
        break;
      case 'message':
        this.emitEvent('message', packet.data ?? '');
        break;
      case 'close':
        this._onClose('transport close');
        break;
      default:
        break; // noop, pong, stray open/upgrade
    }
  }

  _onDrain() {
    this._flush();
    if (this.writeBuffer.length === 0) this.emitEvent('drain');
  }

  /**
   * Sends a message: a string or binary data.
   * @param {string | ArrayBuffer | ArrayBufferView} data
   */
  send(data) {
    this._write({ type: 'message', data: /** @type {any} */ (data) });
    return this;
  }

  /** @param {import('./engine-parser.js').EnginePacket} packet */
  _write(packet) {
    if (this.readyState === 'closed' || this.readyState === 'closing') return;
    this.writeBuffer.push(packet);
    this._flush();
  }

  _flush() {
    const t = this.transport;
    if (this.readyState !== 'open' || !t || !t.writable || this._upgrading || this.writeBuffer.length === 0) return;
    let batch;
    if (t.name === 'websocket' || !this.maxPayload) {
      batch = this.writeBuffer;
      this.writeBuffer = [];
    } else {
      // A payload never exceeds maxPayload (but one packet always goes, whatever its size).
      let size = 0;
      let n = 0;
      for (; n < this.writeBuffer.length; n++) {
        const len = utf8Length(/** @type {string} */ (encodePacket(this.writeBuffer[n]))) + (n > 0 ? 1 : 0);
        if (n > 0 && size + len > this.maxPayload) break;
        size += len;
      }
      batch = this.writeBuffer.slice(0, n);
      this.writeBuffer = this.writeBuffer.slice(n);
    }
    t.send(batch);
  }

  /** @param {number} delay */
  _scheduleProbe(delay) {
    if (this.opts.upgrade === false) return;
    if (!this.transport || this.transport.name === 'websocket') return;
    if (!this.upgrades.includes('websocket') || !this.transportNames.includes('websocket')) return;
    this._clearTimer(this._probeTimer);
    this._probeTimer = this._setTimer(() => this._startProbe(), delay);
  }

  /** Probes WebSocket with the session's sid (2probe / 3probe / 5) and switches to it. */
  _startProbe() {
    if (this.readyState !== 'open' || this._probe) return;
    const from = this.transport;
    const ws = this._create('websocket', this.id);
    this._probe = ws;
    let phase = 'probing';
    /** @type {import('./engine-parser.js').EnginePacket[]} */
    const held = [];
    const fail = (reason) => {
      if (phase === 'done' || phase === 'failed') return;
      const wasSwitching = phase === 'switching';
      phase = 'failed';
      this._clearTimer(timer);
      ws.off('open', onOpen);
      ws.off('packet', onPacket);
      ws.off('close', onClose);
      ws.close();
      this._probe = null;
      this.emitEvent('upgradeError', new Error(reason));
      if (wasSwitching) {
        // The upgrade packet went out: the server has moved the session to this socket.
        this._upgrading = false;
        this._onClose('transport error', new Error(reason));
        return;
      }
      this._upgrading = false;
      // The old transport may have been paused for the switch: let it run again.
      if (this.transport === from && typeof from.unpause === 'function') from.unpause();
      this._probeDelay = Math.min(this._probeDelay * 2 || 15000, 300000);
      this._scheduleProbe(this._probeDelay);
      this._flush();
    };
    const onOpen = () => ws.send([{ type: 'ping', data: 'probe' }]);
    const onPacket = (packet) => {
      if (phase === 'switching') {
        held.push(packet);
        return;
      }
      if (phase !== 'probing') return;
      if (packet.type === 'pong' && packet.data === 'probe') {
        // The probe timer keeps running until the upgrade packet goes out: pausing the old
        // transport (waiting for its requests in flight) must not hang the session either.
        this._switch(ws, from, held, () => phase, (p) => (phase = p), fail, () => this._clearTimer(timer));
      } else {
        fail(`websocket probe: unexpected ${packet.type} packet`);
      }
    };
    const onClose = ({ error }) => fail(`websocket probe failed: ${error?.message ?? 'closed'}`);
    ws.on('open', onOpen);
    ws.on('packet', onPacket);
    ws.on('close', onClose);
    const timer = this._setTimer(() => fail('websocket probe timed out'), this.timeouts.websocket ?? 3000);
    ws.open();
  }

  /**
   * The second half of an upgrade: pause the old transport, send the upgrade packet,
   * (SSE) let the stream deliver everything up to its noop, then switch.
   */
  async _switch(ws, from, held, getPhase, setPhase, fail, stopProbeTimer) {
    this._upgrading = true;
    await from.pause();
    if (getPhase() !== 'probing' || this.readyState !== 'open' || this.transport !== from) {
      if (getPhase() === 'probing') fail('session changed during the upgrade');
      return;
    }
    stopProbeTimer();
    setPhase('switching');
    ws.send([{ type: 'upgrade' }]);
    if (typeof from.awaitStreamEnd === 'function') {
      // docs/sse.md: the stream's packets up to its noop come before anything on the WebSocket.
      const limit = this.pingInterval + this.pingTimeout;
      let limitTimer;
      await Promise.race([from.awaitStreamEnd(), new Promise((r) => (limitTimer = this._setTimer(r, limit)))]);
      this._clearTimer(limitTimer);
    }
    if (getPhase() !== 'switching' || this.readyState !== 'open') return;
    setPhase('done');
    this._probe = null;
    ws.off('packet');
    ws.off('open');
    ws.off('close');
    this._detach(from);
    from.close();
    this._setTransport(ws);
    this._upgrading = false;
    this.memory.markWebsocketWorked(this.endpoint);
    this.emitEvent('transport', { name: 'websocket', reason: 'upgraded', previous: from.name });
    this.emitEvent('upgrade', ws);
    for (const p of held) this._onPacket(p);
    this._flush();
  }

  /** Closes the session (sends the close packet when possible). */
  close() {
    if (this.readyState === 'opening') {
      this._onClose('forced close');
      return this;
    }
    if (this.readyState !== 'open') return this;
    this.readyState = 'closing';
    const t = this.transport;
    const finish = () => this._onClose('forced close');
    if (this._upgrading || !t.writable) {
      // Let the write in flight finish, then say goodbye (bounded).
      const timer = this._setTimer(finish, 1000);
      t.once('drain', () => {
        this._clearTimer(timer);
        t.send([...this.writeBuffer, { type: 'close' }]);
        this.writeBuffer = [];
        finish();
      });
    } else {
      t.send([...this.writeBuffer, { type: 'close' }]);
      this.writeBuffer = [];
      finish();
    }
    return this;
  }

  /**
   * Ends the session: stops timers and transports, emits 'close' once.
   * @param {string} reason  'forced close' | 'transport close' | 'transport error' | 'ping timeout'
   * @param {Error} [error]
   */
  _onClose(reason, error) {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    for (const t of this._candidates) t.close();
    this._candidates = [];
    if (this._probe) {
      this._probe.close();
      this._probe = null;
    }
    this._upgrading = false;
    if (this.transport) {
      this._detach(this.transport);
      this.transport.close();
    }
    this.writeBuffer = [];
    this.emitEvent('close', reason, error);
    this.id = undefined;
  }
}
