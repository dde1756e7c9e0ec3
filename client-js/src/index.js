// tidewire's JavaScript client: `io(url, options)` as in Socket.IO, over WebSocket,
// SSE (tidewire servers) or long-polling.

import { Manager } from './manager.js';
import { Socket } from './socket.js';

/** Managers by server + path, shared by io() calls (multiplexing). */
const cache = new Map();

/**
 * Connects to namespace `url`'s path (default '/') of the server at `url`
 * (default: this page's origin).
 * @param {string | object} [url]
 * @param {object} [opts]
 * @returns {Socket}
 */
export function io(url, opts) {
  if (typeof url === 'object' && url !== null) {
    opts = url;
    url = undefined;
  }
  opts = { ...(opts ?? {}) };
  const base = globalThis.location?.href;
  if (url === undefined && !base) throw new Error('tidewire: io() needs a URL outside a browser page');
  const parsed = new URL(url ?? '/', base);
  const origin = `${parsed.protocol}//${parsed.host}`;
  const nsp = decodeURIComponent(parsed.pathname) || '/';
  if (parsed.search) {
    const query = { ...(opts.query ?? {}) };
    for (const [k, v] of parsed.searchParams) query[k] = v;
    opts.query = query;
  }
  const key = `${origin}${opts.path ?? '/socket.io/'}`;
  const cached = cache.get(key);
  const newConnection =
    opts.forceNew || opts['force new connection'] || opts.multiplex === false || (cached && cached.nsps[nsp]);
  let manager;
  if (newConnection) {
    manager = new Manager(origin, opts);
  } else {
    manager = cached ?? new Manager(origin, opts);
    if (!cached) cache.set(key, manager);
  }
  return manager.socket(nsp, opts);
}

export { io as connect, Manager, Socket };
export { EngineSocket, DEFAULT_TRANSPORTS, DEFAULT_TRANSPORT_TIMEOUTS } from './engine.js';
export { Backoff } from './backoff.js';
export { TransportMemory } from './transport-memory.js';
export { SseParser } from './sse-parser.js';
export * as engineParser from './engine-parser.js';
export * as parser from './sio-parser.js';
export const protocol = 5;
export default io;
