// What every transport has in common.
//
// A transport carries Engine.IO packets for one session attempt:
//   open()             starts it (the server answers with the open packet, as a 'packet' event)
//   send(packets)      writes packets; `writable` is false while a write is in flight, 'drain' follows
//   pause()            resolves once no request is in flight and none will start (before an upgrade)
//   unpause()          undoes pause() (the upgrade failed before the upgrade packet)
//   close()            stops it silently (the engine decides what to send first)
// Events: 'open' (the channel is up; no packet yet), 'packet' (EnginePacket),
// 'drain', 'close' ({ reason, error? }) exactly once unless close() was called.
// `sid` is set by the engine once the open packet arrived.

import { Emitter } from '../emitter.js';

/**
 * @typedef {object} TransportOptions
 * @property {string} url            the Engine.IO endpoint, e.g. http://host:port/socket.io/
 * @property {Record<string, string>} [query]  extra query parameters
 * @property {string} [sid]
 * @property {any} [WebSocket]       a WebSocket constructor (default globalThis.WebSocket)
 * @property {typeof fetch} [fetch]  a fetch function (default globalThis.fetch)
 * @property {Record<string, string>} [extraHeaders]  headers for HTTP requests (not possible on browser WebSockets)
 * @property {RequestCredentials} [credentials]  fetch credentials mode (default 'same-origin'; 'include' = withCredentials)
 */

export class Transport extends Emitter {
  /** @param {TransportOptions} opts */
  constructor(opts) {
    super();
    this.opts = opts;
    /** @type {string | undefined} */
    this.sid = opts.sid;
    this.writable = false;
    this.closed = false;
    this._requests = 0;
  }

  /** @type {string} */
  get name() {
    return 'transport';
  }

  /**
   * The request URL with EIO=4, transport=<name>, the sid and `extra` parameters.
   * @param {Record<string, string>} [extra]
   * @param {boolean} [ws]
   */
  uri(extra = {}, ws = false) {
    const u = new URL(this.opts.url);
    if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = u.searchParams;
    for (const [k, v] of Object.entries(this.opts.query ?? {})) params.set(k, String(v));
    params.set('EIO', '4');
    params.set('transport', this.name);
    if (this.sid) params.set('sid', this.sid);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    return u.toString();
  }

  get fetch() {
    const f = this.opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new Error('no fetch() available');
    // Browsers throw "Illegal invocation" when window.fetch is called as a method of
    // another object (this.fetch(...)), so the global one is bound to its realm.
    return f === globalThis.fetch ? f.bind(globalThis) : f;
  }

  /**
   * Reports the end of this transport once (not after close()).
   * @param {string} reason
   * @param {Error} [error]
   */
  _onClose(reason, error) {
    if (this.closed) return;
    this.closed = true;
    this.writable = false;
    this.emitEvent('close', { reason, error });
  }

  /** @param {import('../engine-parser.js').EnginePacket} packet */
  _onPacket(packet) {
    if (this.closed) return;
    this.emitEvent('packet', packet);
  }

  close() {
    this.closed = true;
    this.writable = false;
  }
}

/**
 * A readable Error for a failed HTTP request: status plus the Engine.IO JSON message if any.
 * @param {Response} res
 */
export async function httpError(res) {
  let body = '';
  try {
    body = await res.text();
  } catch {
    // ignore
  }
  let message = body.slice(0, 200);
  try {
    const json = JSON.parse(body);
    if (json && typeof json.message === 'string') message = json.message;
  } catch {
    // not JSON
  }
  const err = new Error(`HTTP ${res.status}${message ? `: ${message}` : ''}`);
  /** @type {any} */ (err).status = res.status;
  return err;
}
