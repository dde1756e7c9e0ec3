// What the client remembers about transports between connections.
//
// A fallback (SSE or polling after WebSocket failed) is remembered only while
// WebSocket never worked for that server on this page or in this browser session
// (sessionStorage, never localStorage: remembering it for good would pin clients
// to the slow path after a mere server restart). Once WebSocket works, the
// fallback is forgotten.

/**
 * @typedef {{ getItem(key: string): string | null, setItem(key: string, value: string): void, removeItem(key: string): void }} StorageLike
 */

export class TransportMemory {
  /**
   * @param {{ storage?: StorageLike | null }} [opts]  storage: default sessionStorage when available; null for page memory only
   */
  constructor(opts = {}) {
    /** @type {Map<string, string>} */
    this._page = new Map();
    this._storage = opts.storage === undefined ? defaultStorage() : opts.storage;
  }

  /** @param {string} key */
  _get(key) {
    if (this._page.has(key)) return this._page.get(key) ?? null;
    try {
      return this._storage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  /**
   * @param {string} key
   * @param {string | null} value
   */
  _set(key, value) {
    if (value === null) this._page.delete(key);
    else this._page.set(key, value);
    try {
      if (value === null) this._storage?.removeItem(key);
      else this._storage?.setItem(key, value);
    } catch {
      // storage full or disabled: page memory still works
    }
  }

  /** @param {string} server */
  websocketWorked(server) {
    return this._get(`tidewire:ws-worked:${server}`) === '1';
  }

  /** @param {string} server */
  markWebsocketWorked(server) {
    this._set(`tidewire:ws-worked:${server}`, '1');
    this._set(`tidewire:fallback:${server}`, null);
  }

  /**
   * The remembered fallback transport for `server`, if WebSocket never worked there.
   * @param {string} server
   * @returns {string | null}
   */
  fallback(server) {
    if (this.websocketWorked(server)) return null;
    return this._get(`tidewire:fallback:${server}`);
  }

  /**
   * Remembers `transport` as what worked after WebSocket failed (ignored once WebSocket worked).
   * @param {string} server
   * @param {string} transport
   */
  rememberFallback(server, transport) {
    if (this.websocketWorked(server)) return;
    this._set(`tidewire:fallback:${server}`, transport);
  }

  /** Forgets everything about `server`. */
  forget(server) {
    this._set(`tidewire:ws-worked:${server}`, null);
    this._set(`tidewire:fallback:${server}`, null);
  }
}

function defaultStorage() {
  try {
    const s = globalThis.sessionStorage;
    return s ?? null;
  } catch {
    return null; // access denied (sandboxed iframe, disabled cookies)
  }
}

/** The memory shared by every client of this page. */
export const pageTransportMemory = new TransportMemory();
