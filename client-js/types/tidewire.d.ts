// Type declarations of the tidewire JavaScript client (hand-written; keep in sync with src/).

export type TransportName = 'websocket' | 'sse' | 'polling';

/** Told to the page each time the connection settles on a transport. */
export interface TransportEvent {
  name: TransportName;
  /**
   * Why this transport: 'first choice', 'remembered fallback', 'upgraded',
   * 'websocket timed out', 'websocket failed: <error>', 'sse timed out (buffering proxy?)',
   * 'sse failed: <error>', 'polling timed out', ... (the failure of the transport tried before).
   */
  reason: string;
  /** The transports that failed before this one, in order. */
  failures?: { name: TransportName; reason: string }[];
  /** The transport upgraded from (reason 'upgraded'). */
  previous?: TransportName;
}

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Remembers, per server, whether WebSocket worked and which fallback did (sessionStorage + page memory). */
export class TransportMemory {
  constructor(opts?: { storage?: StorageLike | null });
  websocketWorked(server: string): boolean;
  markWebsocketWorked(server: string): void;
  fallback(server: string): TransportName | null;
  rememberFallback(server: string, transport: TransportName): void;
  forget(server: string): void;
}

export interface EngineOptions {
  /** Engine.IO path on the server. Default '/socket.io/'. */
  path?: string;
  /** Extra query parameters of every request. */
  query?: Record<string, string>;
  /** Transports to try, in order. Default ['websocket', 'sse', 'polling']. */
  transports?: TransportName[];
  /** How long each transport gets to deliver the open packet (ms). Default { websocket: 3000, sse: 4000, polling: 10000 }. */
  transportTimeouts?: Partial<Record<TransportName, number>>;
  /** Upgrade SSE/polling sessions to WebSocket in the background. Default true. */
  upgrade?: boolean;
  /** Delay before probing WebSocket again after it failed (ms, doubles per failed probe up to 5 min). Default 15000. */
  upgradeProbeDelay?: number;
  /** Start with the remembered fallback when WebSocket never worked in this browser session. Default true. */
  rememberUpgrade?: boolean;
  /** WebSocket constructor (default globalThis.WebSocket; in node 20 pass the `ws` package's). */
  WebSocket?: any;
  /** fetch implementation (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Headers of the HTTP requests (polling, SSE); browsers' WebSockets cannot carry any. */
  extraHeaders?: Record<string, string>;
  /** Send cookies cross-origin (fetch credentials 'include'). */
  withCredentials?: boolean;
  transportMemory?: TransportMemory;
}

export interface ManagerOptions extends EngineOptions {
  /** Reconnect automatically. Default true. */
  reconnection?: boolean;
  /** Default Infinity. */
  reconnectionAttempts?: number;
  /** First reconnection delay (ms). Default 1000. */
  reconnectionDelay?: number;
  /** Largest reconnection delay (ms). Default 5000. */
  reconnectionDelayMax?: number;
  /** Jitter: each delay is randomized by ± this fraction. Default 0.5. */
  randomizationFactor?: number;
  /** Connection timeout (ms) of one attempt, all transports included. Default 20000. */
  timeout?: number;
  /** Connect on creation. Default true. */
  autoConnect?: boolean;
}

export interface SocketOptions {
  /** Sent in the CONNECT packet (the server's `socket.auth()`); a function gets a callback. */
  auth?: Record<string, any> | ((cb: (data: Record<string, any>) => void) => void);
  /** Default ack timeout of every emit with an ack (ms); callbacks then receive an error first. */
  ackTimeout?: number;
}

export interface ClientOptions extends ManagerOptions, SocketOptions {
  /** A new connection instead of sharing the cached one for this server. */
  forceNew?: boolean;
  /** Share connections between io() calls for the same server. Default true. */
  multiplex?: boolean;
}

export type Listener = (...args: any[]) => void;

export class Emitter {
  on(event: string, fn: Listener): this;
  once(event: string, fn: Listener): this;
  off(event?: string, fn?: Listener): this;
  /** Calls local listeners (on a Socket, `emit` sends to the server instead). */
  emitEvent(event: string, ...args: any[]): boolean;
  addListener(event: string, fn: Listener): this;
  removeListener(event: string, fn: Listener): this;
  removeAllListeners(event?: string): this;
  listeners(event: string): Listener[];
  hasListeners(event: string): boolean;
}

/** The Engine.IO connection. */
export class EngineSocket extends Emitter {
  constructor(url: string, opts?: EngineOptions);
  readonly endpoint: string;
  readyState: 'closed' | 'opening' | 'open' | 'closing';
  /** The Engine.IO session id. */
  id: string | undefined;
  /** 'websocket', 'sse', 'polling' or null. */
  readonly transportName: TransportName | null;
  /** Last SSE event id received in this session ('' when not on SSE). */
  readonly lastEventId: string;
  handshake: { sid: string; upgrades: string[]; pingInterval: number; pingTimeout: number; maxPayload: number } | null;
  open(): this;
  send(data: string | ArrayBuffer | ArrayBufferView): this;
  close(): this;
}

/**
 * One connection to a server: reconnection, transports, namespaces.
 * Events: 'open', 'close' (reason, error), 'error' (Error), 'transport' (TransportEvent),
 * 'transportFailed', 'upgradeError', 'ping', 'reconnect_attempt' (n), 'reconnect' (n),
 * 'reconnect_error' (Error), 'reconnect_failed', 'reconnect_scheduled' ({ delay, attempt }).
 */
export class Manager extends Emitter {
  constructor(uri?: string, opts?: ManagerOptions);
  constructor(opts: ManagerOptions);
  readonly uri: string;
  /** The current transport, or null when not connected. */
  readonly transport: TransportName | null;
  /** The last transport event (what the page is on and why). */
  lastTransportEvent: TransportEvent | null;
  readonly readyState: 'closed' | 'opening' | 'open';
  engine: EngineSocket | null;
  nsps: Record<string, Socket>;
  backoff: Backoff;
  open(fn?: (err?: Error) => void): this;
  connect(fn?: (err?: Error) => void): this;
  socket(nsp: string, opts?: SocketOptions): Socket;
  disconnect(): void;
  reconnection(): boolean;
  reconnection(v: boolean): this;
  reconnectionAttempts(): number;
  reconnectionAttempts(v: number): this;
  reconnectionDelay(): number;
  reconnectionDelay(v: number): this;
  reconnectionDelayMax(): number;
  reconnectionDelayMax(v: number): this;
  randomizationFactor(): number;
  randomizationFactor(v: number): this;
  timeout(): number;
  timeout(v: number): this;
}

/** Why a socket disconnected. */
export type DisconnectReason =
  | 'io server disconnect'
  | 'io client disconnect'
  | 'transport close'
  | 'transport error'
  | 'ping timeout'
  | 'parse error'
  | 'forced close';

/**
 * One namespace. Events: 'connect', 'connect_error' (Error with `.data`),
 * 'disconnect' (reason, description), and the server's events.
 */
export class Socket extends Emitter {
  readonly io: Manager;
  readonly nsp: string;
  /** The Socket.IO session id while connected. */
  id: string | undefined;
  connected: boolean;
  readonly disconnected: boolean;
  /** Whether the socket is connected, connecting or reconnecting. */
  readonly active: boolean;
  /** Connection-state recovery restored the previous session (needs server support). */
  recovered: boolean;
  auth: SocketOptions['auth'];
  /** Packets emitted while offline, sent on the next connect. */
  sendBuffer: unknown[];
  connect(): this;
  open(): this;
  disconnect(): this;
  close(): this;
  /** Sends an event; a function as last argument receives the ack. Buffered while offline. */
  emit(event: string, ...args: any[]): this;
  send(...args: any[]): this;
  /** Resolves with the ack's first argument; rejects on timeout (with timeout()/ackTimeout) or disconnect. */
  emitWithAck(event: string, ...args: any[]): Promise<any>;
  /** The next emit's ack times out after `ms`: its callback then gets an Error first ("ack timed out after <ms> ms"). */
  timeout(ms: number): this;
  /** Accepted for Socket.IO compatibility (no effect). */
  compress(enabled: boolean): this;
  /** The next emit is dropped instead of buffered when offline. */
  readonly volatile: this;
  onAny(fn: (event: string, ...args: any[]) => void): this;
  offAny(fn?: (event: string, ...args: any[]) => void): this;
  listenersAny(): ((event: string, ...args: any[]) => void)[];
}

/** Exponential backoff with jitter. */
export class Backoff {
  constructor(opts?: { min?: number; max?: number; factor?: number; jitter?: number; random?: () => number });
  min: number;
  max: number;
  factor: number;
  jitter: number;
  attempts: number;
  /** The next delay (ms); counts an attempt. */
  duration(): number;
  reset(): void;
  setMin(min: number): void;
  setMax(max: number): void;
  setJitter(jitter: number): void;
}

export interface SseEvent {
  type: string;
  data: string;
  id: string;
}

/** Incremental text/event-stream parser. */
export class SseParser {
  lastEventId: string;
  retry: number | undefined;
  feed(chunk: Uint8Array | string): SseEvent[];
}

export const DEFAULT_TRANSPORTS: readonly TransportName[];
export const DEFAULT_TRANSPORT_TIMEOUTS: Readonly<Record<TransportName, number>>;
export const protocol: 5;

export interface EnginePacket {
  type: 'open' | 'close' | 'ping' | 'pong' | 'message' | 'upgrade' | 'noop';
  data?: string | ArrayBuffer;
}

export namespace engineParser {
  function encodePacket(packet: EnginePacket, binaryFrames?: boolean): string | Uint8Array;
  function decodePacket(raw: string | ArrayBuffer | ArrayBufferView): EnginePacket;
  function encodePayload(packets: EnginePacket[]): string;
  function decodePayload(payload: string): EnginePacket[];
}

export interface SioPacket {
  type: number;
  nsp: string;
  data?: any;
  id?: number;
  attachments?: number;
}

export namespace parser {
  const PacketType: {
    readonly CONNECT: 0;
    readonly DISCONNECT: 1;
    readonly EVENT: 2;
    readonly ACK: 3;
    readonly CONNECT_ERROR: 4;
    readonly BINARY_EVENT: 5;
    readonly BINARY_ACK: 6;
  };
  function encode(packet: SioPacket): (string | ArrayBuffer | ArrayBufferView)[];
  function decodeString(str: string): SioPacket;
  class Decoder extends Emitter {
    constructor(opts?: { maxAttachments?: number });
    add(message: string | ArrayBuffer): void;
    destroy(): void;
  }
}

/**
 * Connects to the namespace in `url`'s path (default '/') of the server at `url`
 * (default: the page's origin). Sockets of one server share a connection unless forceNew.
 */
export function io(url?: string, opts?: ClientOptions): Socket;
export function io(opts: ClientOptions): Socket;
export { io as connect };
export default io;
