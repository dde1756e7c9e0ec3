/*! tidewire client v0.1.0 | Engine.IO v4 + Socket.IO v5 + SSE | MIT */
var __defProp = Object.defineProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/emitter.js
var Emitter = class {
  constructor() {
    this._listeners = /* @__PURE__ */ new Map();
  }
  /**
   * Registers `fn` for `event`.
   * @param {string} event
   * @param {Function} fn
   * @returns {this}
   */
  on(event, fn) {
    const list = this._listeners.get(event);
    if (list) list.push(fn);
    else this._listeners.set(event, [fn]);
    return this;
  }
  /**
   * Registers `fn` for the next `event` only.
   * @param {string} event
   * @param {Function} fn
   * @returns {this}
   */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    wrapper.fn = fn;
    return this.on(event, wrapper);
  }
  /**
   * Removes `fn` from `event`; every listener of `event` without `fn`; every listener without arguments.
   * @param {string} [event]
   * @param {Function} [fn]
   * @returns {this}
   */
  off(event, fn) {
    if (event === void 0) {
      this._listeners.clear();
      return this;
    }
    if (fn === void 0) {
      this._listeners.delete(event);
      return this;
    }
    const list = this._listeners.get(event);
    if (!list) return this;
    const i = list.findIndex((l) => l === fn || /** @type {any} */
    l.fn === fn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(event);
    return this;
  }
  /**
   * Calls every listener of `event` with `args`. A throwing listener does not stop the others;
   * its error is rethrown asynchronously so it still shows up.
   * @param {string} event
   * @param {...any} args
   * @returns {boolean} whether there were listeners
   */
  emitEvent(event, ...args) {
    const list = this._listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const fn of list.slice()) {
      try {
        fn.apply(this, args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
    return true;
  }
  /** Alias of on(). */
  addListener(event, fn) {
    return this.on(event, fn);
  }
  /** Alias of off(event, fn). */
  removeListener(event, fn) {
    return this.off(event, fn);
  }
  /** Removes every listener of `event` (of every event without argument). */
  removeAllListeners(event) {
    return this.off(event);
  }
  /**
   * @param {string} event
   * @returns {Function[]}
   */
  listeners(event) {
    return (this._listeners.get(event) ?? []).map((l) => (
      /** @type {any} */
      l.fn ?? l
    ));
  }
  /**
   * @param {string} event
   * @returns {boolean}
   */
  hasListeners(event) {
    return (this._listeners.get(event)?.length ?? 0) > 0;
  }
};

// src/engine-parser.js
var engine_parser_exports = {};
__export(engine_parser_exports, {
  PACKET_TYPES: () => PACKET_TYPES,
  SEPARATOR: () => SEPARATOR,
  decodePacket: () => decodePacket,
  decodePayload: () => decodePayload,
  encodePacket: () => encodePacket,
  encodePayload: () => encodePayload,
  utf8Length: () => utf8Length
});

// src/base64.js
var ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
var LOOKUP = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;
function bytesToBase64(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = bytes[i] << 16 | bytes[i + 1] << 8 | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[n >> 12 & 63] + ALPHABET[n >> 6 & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >> 18] + ALPHABET[n >> 12 & 63] + "==";
  } else if (rest === 2) {
    const n = bytes[i] << 16 | bytes[i + 1] << 8;
    out += ALPHABET[n >> 18] + ALPHABET[n >> 12 & 63] + ALPHABET[n >> 6 & 63] + "=";
  }
  return out;
}
function base64ToBytes(text) {
  let end = text.length;
  while (end > 0 && text[end - 1] === "=") end--;
  if (text.length - end > 2 || end % 4 === 1) throw new Error("invalid base64");
  const out = new Uint8Array(Math.floor(end * 3 / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? LOOKUP[c] : -1;
    if (v < 0) throw new Error("invalid base64");
    acc = acc << 6 | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = acc >> bits & 255;
    }
  }
  return out;
}
var encoder = new TextEncoder();
var utf8Decode = (bytes) => new TextDecoder("utf-8", { fatal: true }).decode(bytes);
function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}
function toArrayBuffer(bytes) {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return (
    /** @type {ArrayBuffer} */
    bytes.buffer
  );
  return (
    /** @type {ArrayBuffer} */
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  );
}
function isBinary(value) {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value) || typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer;
}

// src/engine-parser.js
var PACKET_TYPES = (
  /** @type {const} */
  ["open", "close", "ping", "pong", "message", "upgrade", "noop"]
);
var SEPARATOR = "";
function encodePacket(packet, binaryFrames = false) {
  const code = PACKET_TYPES.indexOf(packet.type);
  if (code < 0) throw new Error(`unknown packet type ${packet.type}`);
  const { data } = packet;
  if (data !== void 0 && isBinary(data)) {
    if (packet.type !== "message") throw new Error("only message packets can be binary");
    return binaryFrames ? asBytes(data) : "b" + bytesToBase64(asBytes(data));
  }
  return String(code) + (data ?? "");
}
function decodePacket(raw) {
  if (typeof raw !== "string") {
    return { type: "message", data: toArrayBuffer(new Uint8Array(asBytes(raw))) };
  }
  if (raw.length === 0) throw new Error("empty packet");
  if (raw[0] === "b") {
    let bytes;
    try {
      bytes = base64ToBytes(raw.slice(1));
    } catch {
      throw new Error("invalid base64 in binary packet");
    }
    return { type: "message", data: toArrayBuffer(bytes) };
  }
  const code = raw.charCodeAt(0) - 48;
  const type = PACKET_TYPES[code];
  if (type === void 0 || code < 0) throw new Error(`unknown packet type ${JSON.stringify(raw[0])}`);
  return raw.length > 1 ? { type, data: raw.slice(1) } : { type };
}
function encodePayload(packets) {
  return packets.map((p) => (
    /** @type {string} */
    encodePacket(p, false)
  )).join(SEPARATOR);
}
function decodePayload(payload) {
  if (payload.length === 0) throw new Error("empty payload");
  return payload.split(SEPARATOR).map(decodePacket);
}
function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) n += 1;
    else if (c < 2048) n += 2;
    else if (c >= 55296 && c < 56320 && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

// src/transports/transport.js
var Transport = class extends Emitter {
  /** @param {TransportOptions} opts */
  constructor(opts) {
    super();
    this.opts = opts;
    this.sid = opts.sid;
    this.writable = false;
    this.closed = false;
    this._requests = 0;
  }
  /** @type {string} */
  get name() {
    return "transport";
  }
  /**
   * The request URL with EIO=4, transport=<name>, the sid and `extra` parameters.
   * @param {Record<string, string>} [extra]
   * @param {boolean} [ws]
   */
  uri(extra = {}, ws = false) {
    const u = new URL(this.opts.url);
    if (ws) u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    const params = u.searchParams;
    for (const [k, v] of Object.entries(this.opts.query ?? {})) params.set(k, String(v));
    params.set("EIO", "4");
    params.set("transport", this.name);
    if (this.sid) params.set("sid", this.sid);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    return u.toString();
  }
  get fetch() {
    const f = this.opts.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new Error("no fetch() available");
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
    this.emitEvent("close", { reason, error });
  }
  /** @param {import('../engine-parser.js').EnginePacket} packet */
  _onPacket(packet) {
    if (this.closed) return;
    this.emitEvent("packet", packet);
  }
  close() {
    this.closed = true;
    this.writable = false;
  }
};
async function httpError(res) {
  let body = "";
  try {
    body = await res.text();
  } catch {
  }
  let message = body.slice(0, 200);
  try {
    const json = JSON.parse(body);
    if (json && typeof json.message === "string") message = json.message;
  } catch {
  }
  const err = new Error(`HTTP ${res.status}${message ? `: ${message}` : ""}`);
  err.status = res.status;
  return err;
}

// src/transports/websocket.js
var WebSocketTransport = class extends Transport {
  get name() {
    return "websocket";
  }
  open() {
    const WS = this.opts.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") {
      queueMicrotask(() => this._onClose("transport error", new Error("no WebSocket implementation available")));
      return;
    }
    let ws;
    try {
      ws = new WS(this.uri({}, true));
    } catch (err) {
      queueMicrotask(() => this._onClose(
        "transport error",
        /** @type {Error} */
        err
      ));
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      if (this.closed) return;
      this.writable = true;
      this.emitEvent("open");
    };
    ws.onmessage = (ev) => {
      let packet;
      try {
        packet = decodePacket(typeof ev.data === "string" ? ev.data : toBinary(ev.data));
      } catch (err) {
        this._fail(new Error(`invalid packet: ${/** @type {Error} */
        err.message}`));
        return;
      }
      this._onPacket(packet);
    };
    ws.onerror = (ev) => {
      this._fail(new Error(`websocket error${ev && ev.message ? `: ${ev.message}` : ""}`));
    };
    ws.onclose = (ev) => {
      this._detach();
      this._onClose("transport close", new Error(`websocket closed (code ${ev?.code ?? "?"})`));
    };
  }
  /** @param {Error} err */
  _fail(err) {
    this._detach();
    try {
      this.ws?.close();
    } catch {
    }
    this._onClose("transport error", err);
  }
  _detach() {
    if (!this.ws) return;
    this.ws.onopen = this.ws.onmessage = this.ws.onerror = this.ws.onclose = null;
  }
  /** @param {import('../engine-parser.js').EnginePacket[]} packets */
  send(packets) {
    if (this.closed || !this.ws) return;
    this.writable = false;
    try {
      for (const p of packets) this.ws.send(encodePacket(p, true));
    } catch (err) {
      this._fail(
        /** @type {Error} */
        err
      );
      return;
    }
    setTimeout(() => {
      if (this.closed) return;
      this.writable = true;
      this.emitEvent("drain");
    }, 0);
  }
  pause() {
    return Promise.resolve();
  }
  unpause() {
  }
  close() {
    super.close();
    this._detach();
    try {
      this.ws?.close();
    } catch {
    }
  }
};
function toBinary(data) {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data;
  if (Array.isArray(data)) {
    const total = data.reduce((n, b) => n + b.byteLength, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const b of data) {
      out.set(b, o);
      o += b.byteLength;
    }
    return out;
  }
  throw new Error("unsupported binary frame type (Blob?); binaryType must be arraybuffer");
}

// src/sse-parser.js
var SseParser = class {
  constructor() {
    this._decoder = new TextDecoder("utf-8");
    this._buffer = "";
    this._skipLF = false;
    this._bomChecked = false;
    this._data = "";
    this._hasData = false;
    this._type = "";
    this.lastEventId = "";
    this.retry = void 0;
  }
  /**
   * @param {Uint8Array | string} chunk
   * @returns {SseEvent[]}
   */
  feed(chunk) {
    let text = typeof chunk === "string" ? chunk : this._decoder.decode(chunk, { stream: true });
    if (!this._bomChecked && text.length > 0) {
      this._bomChecked = true;
      if (text.charCodeAt(0) === 65279) text = text.slice(1);
    }
    const events = [];
    let start = 0;
    const buf = this._buffer + text;
    let i = 0;
    if (this._skipLF && buf.length > 0) {
      if (buf[0] === "\n") {
        start = 1;
        i = 1;
      }
      this._skipLF = false;
    }
    for (; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this._line(buf.slice(start, i), events);
      if (c === 13) {
        if (i + 1 < buf.length) {
          if (buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this._skipLF = true;
        }
      }
      start = i + 1;
    }
    this._buffer = buf.slice(start);
    return events;
  }
  /**
   * @param {string} line
   * @param {SseEvent[]} events
   */
  _line(line, events) {
    if (line.length === 0) {
      if (this._hasData) {
        const data = this._data.endsWith("\n") ? this._data.slice(0, -1) : this._data;
        events.push({ type: this._type || "message", data, id: this.lastEventId });
      }
      this._data = "";
      this._hasData = false;
      this._type = "";
      return;
    }
    if (line[0] === ":") return;
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
    }
    switch (field) {
      case "data":
        this._data += value + "\n";
        this._hasData = true;
        break;
      case "event":
        this._type = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }
};

// src/transports/sse.js
var MAX_RESUMES = 3;
var CONFIRM_AFTER_PACKETS = 1024;
var CONFIRM_AFTER_MS = 1e3;
var SseTransport = class extends Transport {
  get name() {
    return "sse";
  }
  constructor(opts) {
    super(opts);
    this.lastEventId = "";
    this._resumes = 0;
    this._posting = false;
    this._paused = false;
    this._pauseWaiters = [];
    this._abort = null;
    this._opened = false;
    this._onStreamEnd = null;
    this._counter = 0;
    this._unconfirmed = 0;
    this._confirmAfter = 1 + Math.floor(Math.random() * CONFIRM_AFTER_PACKETS);
    this._confirmTimer = null;
  }
  open() {
    this._stream();
  }
  _headers(extra = {}) {
    return { ...this.opts.extraHeaders ?? {}, ...extra };
  }
  async _stream() {
    const abort = new AbortController();
    this._abort = abort;
    const headers = this._headers({ Accept: "text/event-stream" });
    const extra = { t: this._cacheBuster() };
    if (this.lastEventId) {
      if (crossOrigin(this.opts.url)) extra.lastEventId = this.lastEventId;
      else headers["Last-Event-ID"] = this.lastEventId;
    }
    let reader;
    try {
      const res = await this.fetch(this.uri(extra), {
        method: "GET",
        headers,
        credentials: this.opts.credentials ?? "same-origin",
        cache: "no-store",
        signal: abort.signal
      });
      if (!res.ok) throw await httpError(res);
      const type = res.headers.get("content-type") ?? "";
      if (!type.toLowerCase().startsWith("text/event-stream")) {
        throw new Error(`expected text/event-stream, got ${type || "no content type"}`);
      }
      if (!res.body) throw new Error("response has no readable body");
      reader = res.body.getReader();
    } catch (err) {
      if (abort.signal.aborted || this.closed) return;
      this._onClose(
        "transport error",
        /** @type {Error} */
        err
      );
      return;
    }
    if (!this._opened) {
      this._opened = true;
      this.writable = true;
      this.emitEvent("open");
    }
    const parser = new SseParser();
    let failure;
    try {
      for (; ; ) {
        const { done, value } = await reader.read();
        if (done || this.closed || abort.signal.aborted) break;
        for (const event of parser.feed(value)) {
          if (this.closed || abort.signal.aborted) break;
          this._event(event);
        }
      }
    } catch (err) {
      failure = /** @type {Error} */
      err;
    }
    try {
      reader.cancel().catch(() => {
      });
    } catch {
    }
    if (this._abort === abort) this._abort = null;
    this._streamEnded(abort, failure);
  }
  /**
   * An event carries one packet (`t64`: base64 of its text) or several joined by
   * 0x1E, as in a polling payload; its id is its last packet's (docs/sse.md).
   * @param {import('../sse-parser.js').SseEvent} event
   */
  _event(event) {
    let raws;
    try {
      raws = event.type === "t64" ? [utf8Decode(base64ToBytes(event.data))] : event.data.split("");
    } catch (err) {
      this._invalid(err);
      return;
    }
    if (event.id) {
      this.lastEventId = event.id;
      this._unconfirmed += raws.length;
      if (this._unconfirmed >= this._confirmAfter) this._confirm();
      else this._confirmLater();
    }
    this._resumes = 0;
    for (const raw of raws) {
      if (this.closed) return;
      let packet;
      try {
        packet = decodePacket(raw);
      } catch (err) {
        this._invalid(err);
        return;
      }
      this._onPacket(packet);
      if (packet.type === "close") {
        this._abort?.abort();
        this._onClose("transport close");
        return;
      }
      if (packet.type === "noop" && this._onStreamEnd) {
        this._abort?.abort();
        const done = this._onStreamEnd;
        this._onStreamEnd = null;
        done();
        return;
      }
    }
  }
  /** @param {unknown} err */
  _invalid(err) {
    this._abort?.abort();
    this._onClose("transport error", new Error(`invalid SSE event: ${/** @type {Error} */
    err.message}`));
  }
  /**
   * @param {AbortController} abort
   * @param {Error | undefined} failure
   */
  _streamEnded(abort, failure) {
    if (this._onStreamEnd) {
      const done = this._onStreamEnd;
      this._onStreamEnd = null;
      done();
      return;
    }
    if (this.closed || abort.signal.aborted) return;
    if (!this.sid) {
      this._onClose("transport error", failure ?? new Error("SSE stream ended before the open packet"));
      return;
    }
    if (this._resumes >= MAX_RESUMES) {
      this._onClose("transport close", failure ?? new Error("SSE stream ended"));
      return;
    }
    const delay = this._resumes === 0 ? 0 : 250 * this._resumes;
    this._resumes++;
    this.emitEvent("resume", { lastEventId: this.lastEventId });
    setTimeout(() => {
      if (!this.closed) this._stream();
    }, delay);
  }
  _cacheBuster() {
    return `${Date.now().toString(36)}${(this._counter++).toString(36)}`;
  }
  /** Confirms what was received with a noop POST, unless a POST is under way or due. */
  _confirm() {
    if (this._unconfirmed === 0 || this.closed || this._paused) return;
    if (!this.writable || this._posting) {
      this._confirmLater();
      return;
    }
    this.send([{ type: "noop" }]);
  }
  /** Confirms in about CONFIRM_AFTER_MS unless a confirmation is already due. */
  _confirmLater() {
    if (this._confirmTimer) return;
    const delay = CONFIRM_AFTER_MS * (0.5 + Math.random() / 2);
    this._confirmTimer = setTimeout(() => {
      this._confirmTimer = null;
      this._confirm();
    }, delay);
  }
  /** @param {import('../engine-parser.js').EnginePacket[]} packets */
  async send(packets) {
    if (this.closed) return;
    this.writable = false;
    this._posting = true;
    const extra = { t: this._cacheBuster() };
    if (this.lastEventId) extra.ack = this.lastEventId;
    this._unconfirmed = 0;
    this._confirmAfter = CONFIRM_AFTER_PACKETS;
    this._stopConfirming();
    try {
      const res = await this.fetch(this.uri(extra), {
        method: "POST",
        headers: this._headers({ "Content-Type": "text/plain;charset=UTF-8" }),
        credentials: this.opts.credentials ?? "same-origin",
        body: encodePayload(packets)
      });
      if (!res.ok) throw await httpError(res);
      await res.text();
    } catch (err) {
      this._posting = false;
      this._checkPaused();
      if (!this.closed) {
        this._abort?.abort();
        this._onClose(
          "transport error",
          /** @type {Error} */
          err
        );
      }
      return;
    }
    this._posting = false;
    this._checkPaused();
    if (this.closed) return;
    this.writable = true;
    this.emitEvent("drain");
  }
  /** Resolves once no POST is in flight (the stream keeps flowing until the upgrade packet). */
  pause() {
    this._paused = true;
    return new Promise((resolve) => {
      this._pauseWaiters.push(resolve);
      this._checkPaused();
    });
  }
  /** Ends a pause (an upgrade that failed before the upgrade packet). */
  unpause() {
    this._paused = false;
    const waiters = this._pauseWaiters;
    this._pauseWaiters = [];
    for (const w of waiters) w();
  }
  _checkPaused() {
    if (!this._paused || this._posting) return;
    const waiters = this._pauseWaiters;
    this._pauseWaiters = [];
    for (const w of waiters) w();
  }
  /**
   * After the upgrade packet went out on the WebSocket: resolves when the stream delivered
   * its last event (the noop) or ended. Packets keep arriving as 'packet' events until then.
   * @returns {Promise<void>}
   */
  awaitStreamEnd() {
    if (this.closed || !this._abort) return Promise.resolve();
    return new Promise((resolve) => {
      this._onStreamEnd = resolve;
    });
  }
  /**
   * @param {string} reason
   * @param {Error} [error]
   */
  _onClose(reason, error) {
    this._stopConfirming();
    super._onClose(reason, error);
  }
  _stopConfirming() {
    if (this._confirmTimer) clearTimeout(this._confirmTimer);
    this._confirmTimer = null;
  }
  close() {
    super.close();
    this._stopConfirming();
    this._abort?.abort();
    this._abort = null;
    this._posting = false;
    this._checkPaused();
  }
};
function crossOrigin(url) {
  const here = globalThis.location?.origin;
  return typeof here === "string" && here !== "null" && new URL(url).origin !== here;
}

// src/transports/polling.js
var PollingTransport = class extends Transport {
  get name() {
    return "polling";
  }
  constructor(opts) {
    super(opts);
    this._counter = 0;
    this._polling = false;
    this._posting = false;
    this._paused = false;
    this._pauseWaiters = [];
    this._abort = new AbortController();
    this._ack = 0;
    this._retries = 0;
  }
  open() {
    this.writable = false;
    this._poll();
  }
  _cacheBuster() {
    return `${Date.now().toString(36)}${(this._counter++).toString(36)}`;
  }
  _headers(extra = {}) {
    return { ...this.opts.extraHeaders ?? {}, ...extra };
  }
  async _poll() {
    if (this.closed || this._paused || this._polling) return;
    this._polling = true;
    const first = !this.sid;
    try {
      const query = first ? { t: this._cacheBuster() } : { t: this._cacheBuster(), ack: String(this._ack) };
      const res = await this.fetch(this.uri(query), {
        method: "GET",
        headers: this._headers(),
        credentials: this.opts.credentials ?? "same-origin",
        cache: "no-store",
        signal: this._abort.signal
      });
      if (!res.ok) throw await httpError(res);
      const body = await res.text();
      if (this.closed) return;
      const packets = decodePayload(body);
      const seq = Number(res.headers.get("x-tidewire-seq"));
      if (Number.isSafeInteger(seq) && seq > 0) this._ack = seq;
      this._retries = 0;
      if (first) {
        this.writable = true;
        this.emitEvent("open");
      }
      for (const p of packets) {
        if (this.closed) return;
        this._onPacket(p);
        if (p.type === "close") {
          this._onClose("transport close");
          return;
        }
      }
    } catch (err) {
      this._polling = false;
      const httpFailure = (
        /** @type {any} */
        err?.status !== void 0
      );
      if (!this.closed && !first && !httpFailure && !this._paused && this._retries < 2) {
        this._retries++;
        setTimeout(() => this._poll(), 100 * this._retries);
        return;
      }
      if (!this.closed) this._onClose(
        "transport error",
        /** @type {Error} */
        err
      );
      this._checkPaused();
      return;
    }
    this._polling = false;
    this._checkPaused();
    if (!this.closed && !this._paused && this.sid) this._poll();
  }
  /** @param {import('../engine-parser.js').EnginePacket[]} packets */
  async send(packets) {
    if (this.closed) return;
    this.writable = false;
    this._posting = true;
    try {
      const res = await this.fetch(this.uri({ t: this._cacheBuster() }), {
        method: "POST",
        headers: this._headers({ "Content-Type": "text/plain;charset=UTF-8" }),
        credentials: this.opts.credentials ?? "same-origin",
        body: encodePayload(packets)
      });
      if (!res.ok) throw await httpError(res);
      await res.text();
    } catch (err) {
      this._posting = false;
      if (!this.closed) this._onClose(
        "transport error",
        /** @type {Error} */
        err
      );
      this._checkPaused();
      return;
    }
    this._posting = false;
    this._checkPaused();
    if (this.closed) return;
    this.writable = true;
    this.emitEvent("drain");
  }
  /** Stops polling; resolves once no GET or POST is in flight. */
  pause() {
    this._paused = true;
    return new Promise((resolve) => {
      this._pauseWaiters.push(resolve);
      this._checkPaused();
    });
  }
  /** Polls again after a pause (an upgrade that failed). */
  unpause() {
    this._paused = false;
    const waiters = this._pauseWaiters;
    this._pauseWaiters = [];
    for (const w of waiters) w();
    if (!this.closed && this.sid) this._poll();
  }
  _checkPaused() {
    if (!this._paused || this._polling || this._posting) return;
    const waiters = this._pauseWaiters;
    this._pauseWaiters = [];
    for (const w of waiters) w();
  }
  /** Stops the GET loop; a POST in flight (the close packet, say) still completes. */
  close() {
    super.close();
    this._abort.abort();
    this._polling = this._posting = false;
    this._checkPaused();
  }
};

// src/transport-memory.js
var TransportMemory = class {
  /**
   * @param {{ storage?: StorageLike | null }} [opts]  storage: default sessionStorage when available; null for page memory only
   */
  constructor(opts = {}) {
    this._page = /* @__PURE__ */ new Map();
    this._storage = opts.storage === void 0 ? defaultStorage() : opts.storage;
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
    }
  }
  /** @param {string} server */
  websocketWorked(server) {
    return this._get(`tidewire:ws-worked:${server}`) === "1";
  }
  /** @param {string} server */
  markWebsocketWorked(server) {
    this._set(`tidewire:ws-worked:${server}`, "1");
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
};
function defaultStorage() {
  try {
    const s = globalThis.sessionStorage;
    return s ?? null;
  } catch {
    return null;
  }
}
var pageTransportMemory = new TransportMemory();

// src/engine.js
var DEFAULT_TRANSPORTS = Object.freeze(["websocket", "sse", "polling"]);
var DEFAULT_TRANSPORT_TIMEOUTS = Object.freeze({ websocket: 3e3, sse: 4e3, polling: 1e4 });
var TRANSPORTS = { websocket: WebSocketTransport, sse: SseTransport, polling: PollingTransport };
var EngineSocket = class extends Emitter {
  /**
   * @param {string} url  the server, e.g. http://localhost:3000 (its path is ignored; see opts.path)
   * @param {EngineOptions} [opts]
   */
  constructor(url, opts = {}) {
    super();
    const base = new URL(url, globalThis.location?.href);
    let path = opts.path ?? "/socket.io/";
    if (!path.startsWith("/")) path = "/" + path;
    if (!path.endsWith("/")) path += "/";
    this.endpoint = `${base.protocol}//${base.host}${path}`;
    this.opts = opts;
    this.transportNames = (opts.transports ?? DEFAULT_TRANSPORTS).filter((n) => n in this._factories());
    if (this.transportNames.length === 0) throw new Error("no known transport in options.transports");
    this.timeouts = { ...DEFAULT_TRANSPORT_TIMEOUTS, ...opts.transportTimeouts ?? {} };
    this.memory = opts.transportMemory ?? pageTransportMemory;
    this.readyState = "closed";
    this.id = void 0;
    this.transport = null;
    this.handshake = null;
    this.writeBuffer = [];
    this._upgrading = false;
    this._probeDelay = opts.upgradeProbeDelay ?? 15e3;
    this._probe = null;
    this._candidates = [];
    this._timers = /* @__PURE__ */ new Set();
  }
  _factories() {
    return { ...TRANSPORTS, ...this.opts.transportFactories ?? {} };
  }
  /** The current transport's name ('websocket', 'sse', 'polling'), or null. */
  get transportName() {
    return this.transport ? this.transport.name : null;
  }
  /** The id of the last SSE event received in this session ('' when not on SSE). */
  get lastEventId() {
    return this.transport?.lastEventId ?? "";
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
      credentials: this.opts.withCredentials ? "include" : void 0
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
    if (t === void 0 || t === null) return;
    clearTimeout(t);
    this._timers.delete(t);
  }
  /** Opens the session, negotiating the transport. */
  open() {
    if (this.readyState !== "closed") return this;
    this.readyState = "opening";
    this._negotiate();
    return this;
  }
  async _negotiate() {
    const server = this.endpoint;
    let order = this.transportNames.slice();
    let firstReason = "first choice";
    const remembered = this.opts.rememberUpgrade === false ? null : this.memory.fallback(server);
    if (remembered && order[0] === "websocket" && order.includes(remembered)) {
      order = [remembered, ...order.filter((n) => n !== remembered)];
      firstReason = "remembered fallback";
    }
    const failures = [];
    for (const name of order) {
      if (this.readyState !== "opening") return;
      const result = await this._attempt(name);
      if (
        /** @type {string} */
        this.readyState !== "opening"
      ) {
        result.transport?.close();
        return;
      }
      if (result.ok) {
        const wsFailed = failures.some((f) => f.name === "websocket");
        if (name === "websocket") this.memory.markWebsocketWorked(server);
        else if (wsFailed) this.memory.rememberFallback(server, name);
        const reason2 = failures.length === 0 ? firstReason : failures[failures.length - 1].reason;
        this._adopt(result.transport, result.handshake);
        this.emitEvent("transport", { name, reason: reason2, failures: failures.slice() });
        if (
          /** @type {string} */
          this.readyState === "open"
        ) {
          this._scheduleProbe(wsFailed ? this._probeDelay : 0);
        }
        return;
      }
      const { reason } = (
        /** @type {{ reason: string }} */
        result
      );
      failures.push({ name, reason });
      this.emitEvent("transportFailed", { name, reason });
    }
    const err = new Error(`no transport could connect: ${failures.map((f) => f.reason).join("; ")}`);
    err.failures = failures;
    this._onClose("transport error", err);
  }
  /**
   * Opens `name` and waits (at most its timeout) for the open packet.
   * @param {string} name
   * @returns {Promise<{ ok: true, transport: any, handshake: any } | { ok: false, reason: string, transport?: any }>}
   */
  _attempt(name) {
    return new Promise((resolve) => {
      const transport = this._create(name, void 0);
      this._candidates.push(transport);
      let settled = false;
      const finish = (result) => {
        if (settled) return;
        settled = true;
        this._clearTimer(timer);
        transport.off("packet", onPacket);
        transport.off("close", onClose);
        this._candidates = this._candidates.filter((t) => t !== transport);
        if (!result.ok) transport.close();
        resolve(result);
      };
      const onPacket = (packet) => {
        if (packet.type !== "open") {
          finish({ ok: false, reason: `${name} failed: expected the open packet, got ${packet.type}` });
          return;
        }
        let handshake;
        try {
          handshake = JSON.parse(
            /** @type {string} */
            packet.data
          );
          if (typeof handshake.sid !== "string") throw new Error("no sid");
        } catch (err) {
          finish({ ok: false, reason: `${name} failed: invalid handshake (${/** @type {Error} */
          err.message})` });
          return;
        }
        transport.sid = handshake.sid;
        finish({ ok: true, transport, handshake });
      };
      const onClose = ({ error }) => {
        finish({ ok: false, reason: `${name} failed: ${error?.message ?? "closed"}` });
      };
      transport.on("packet", onPacket);
      transport.on("close", onClose);
      const ms = this.timeouts[name] ?? 1e4;
      const timer = this._setTimer(() => {
        const reason = name === "sse" ? "sse timed out (buffering proxy?)" : `${name} timed out`;
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
    this.pingInterval = Number(handshake.pingInterval) || 25e3;
    this.pingTimeout = Number(handshake.pingTimeout) || 2e4;
    this.maxPayload = Number(handshake.maxPayload) || 0;
    this.upgrades = Array.isArray(handshake.upgrades) ? handshake.upgrades : [];
    this._setTransport(transport);
    this.readyState = "open";
    this._resetPingTimer();
    this.emitEvent("open", handshake);
    this._flush();
  }
  /** @param {any} transport */
  _setTransport(transport) {
    if (this.transport) this._detach(this.transport);
    this.transport = transport;
    transport.on("packet", this._onPacketBound = (p) => this._onPacket(p));
    transport.on("drain", this._onDrainBound = () => this._onDrain());
    transport.on("close", this._onTransportCloseBound = ({ reason, error }) => this._onClose(reason, error));
  }
  /** @param {any} transport */
  _detach(transport) {
    transport.off("packet", this._onPacketBound);
    transport.off("drain", this._onDrainBound);
    transport.off("close", this._onTransportCloseBound);
  }
  _resetPingTimer() {
    this._clearTimer(this._pingTimer);
    this._pingTimer = this._setTimer(() => this._onClose("ping timeout"), this.pingInterval + this.pingTimeout);
  }
  /** @param {import('./engine-parser.js').EnginePacket} packet */
  _onPacket(packet) {
    if (this.readyState !== "open" && this.readyState !== "closing") return;
    this.emitEvent("packet", packet);
    switch (packet.type) {
      case "ping":
        this._resetPingTimer();
        this._write({ type: "pong", data: (
          /** @type {string|undefined} */
          packet.data
        ) });
        this.emitEvent("ping");
        break;
      case "message":
        this.emitEvent("message", packet.data ?? "");
        break;
      case "close":
        this._onClose("transport close");
        break;
      default:
        break;
    }
  }
  _onDrain() {
    this._flush();
    if (this.writeBuffer.length === 0) this.emitEvent("drain");
  }
  /**
   * Sends a message: a string or binary data.
   * @param {string | ArrayBuffer | ArrayBufferView} data
   */
  send(data) {
    this._write({ type: "message", data: (
      /** @type {any} */
      data
    ) });
    return this;
  }
  /** @param {import('./engine-parser.js').EnginePacket} packet */
  _write(packet) {
    if (this.readyState === "closed" || this.readyState === "closing") return;
    this.writeBuffer.push(packet);
    this._flush();
  }
  _flush() {
    const t = this.transport;
    if (this.readyState !== "open" || !t || !t.writable || this._upgrading || this.writeBuffer.length === 0) return;
    let batch;
    if (t.name === "websocket" || !this.maxPayload) {
      batch = this.writeBuffer;
      this.writeBuffer = [];
    } else {
      let size = 0;
      let n = 0;
      for (; n < this.writeBuffer.length; n++) {
        const len = utf8Length(
          /** @type {string} */
          encodePacket(this.writeBuffer[n])
        ) + (n > 0 ? 1 : 0);
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
    if (!this.transport || this.transport.name === "websocket") return;
    if (!this.upgrades.includes("websocket") || !this.transportNames.includes("websocket")) return;
    this._clearTimer(this._probeTimer);
    this._probeTimer = this._setTimer(() => this._startProbe(), delay);
  }
  /** Probes WebSocket with the session's sid (2probe / 3probe / 5) and switches to it. */
  _startProbe() {
    if (this.readyState !== "open" || this._probe) return;
    const from = this.transport;
    const ws = this._create("websocket", this.id);
    this._probe = ws;
    let phase = "probing";
    const held = [];
    const fail = (reason) => {
      if (phase === "done" || phase === "failed") return;
      const wasSwitching = phase === "switching";
      phase = "failed";
      this._clearTimer(timer);
      ws.off("open", onOpen);
      ws.off("packet", onPacket);
      ws.off("close", onClose);
      ws.close();
      this._probe = null;
      this.emitEvent("upgradeError", new Error(reason));
      if (wasSwitching) {
        this._upgrading = false;
        this._onClose("transport error", new Error(reason));
        return;
      }
      this._upgrading = false;
      if (this.transport === from && typeof from.unpause === "function") from.unpause();
      this._probeDelay = Math.min(this._probeDelay * 2 || 15e3, 3e5);
      this._scheduleProbe(this._probeDelay);
      this._flush();
    };
    const onOpen = () => ws.send([{ type: "ping", data: "probe" }]);
    const onPacket = (packet) => {
      if (phase === "switching") {
        held.push(packet);
        return;
      }
      if (phase !== "probing") return;
      if (packet.type === "pong" && packet.data === "probe") {
        this._switch(ws, from, held, () => phase, (p) => phase = p, fail, () => this._clearTimer(timer));
      } else {
        fail(`websocket probe: unexpected ${packet.type} packet`);
      }
    };
    const onClose = ({ error }) => fail(`websocket probe failed: ${error?.message ?? "closed"}`);
    ws.on("open", onOpen);
    ws.on("packet", onPacket);
    ws.on("close", onClose);
    const timer = this._setTimer(() => fail("websocket probe timed out"), this.timeouts.websocket ?? 3e3);
    ws.open();
  }
  /**
   * The second half of an upgrade: pause the old transport, send the upgrade packet,
   * (SSE) let the stream deliver everything up to its noop, then switch.
   */
  async _switch(ws, from, held, getPhase, setPhase, fail, stopProbeTimer) {
    this._upgrading = true;
    await from.pause();
    if (getPhase() !== "probing" || this.readyState !== "open" || this.transport !== from) {
      if (getPhase() === "probing") fail("session changed during the upgrade");
      return;
    }
    stopProbeTimer();
    setPhase("switching");
    ws.send([{ type: "upgrade" }]);
    if (typeof from.awaitStreamEnd === "function") {
      const limit = this.pingInterval + this.pingTimeout;
      let limitTimer;
      await Promise.race([from.awaitStreamEnd(), new Promise((r) => limitTimer = this._setTimer(r, limit))]);
      this._clearTimer(limitTimer);
    }
    if (getPhase() !== "switching" || this.readyState !== "open") return;
    setPhase("done");
    this._probe = null;
    ws.off("packet");
    ws.off("open");
    ws.off("close");
    this._detach(from);
    from.close();
    this._setTransport(ws);
    this._upgrading = false;
    this.memory.markWebsocketWorked(this.endpoint);
    this.emitEvent("transport", { name: "websocket", reason: "upgraded", previous: from.name });
    this.emitEvent("upgrade", ws);
    for (const p of held) this._onPacket(p);
    this._flush();
  }
  /** Closes the session (sends the close packet when possible). */
  close() {
    if (this.readyState === "opening") {
      this._onClose("forced close");
      return this;
    }
    if (this.readyState !== "open") return this;
    this.readyState = "closing";
    const t = this.transport;
    const finish = () => this._onClose("forced close");
    if (this._upgrading || !t.writable) {
      const timer = this._setTimer(finish, 1e3);
      t.once("drain", () => {
        this._clearTimer(timer);
        t.send([...this.writeBuffer, { type: "close" }]);
        this.writeBuffer = [];
        finish();
      });
    } else {
      t.send([...this.writeBuffer, { type: "close" }]);
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
    if (this.readyState === "closed") return;
    this.readyState = "closed";
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
    this.emitEvent("close", reason, error);
    this.id = void 0;
  }
};

// src/backoff.js
var Backoff = class {
  /**
   * @param {{ min?: number, max?: number, factor?: number, jitter?: number, random?: () => number }} [opts]
   */
  constructor(opts = {}) {
    this.min = opts.min ?? 1e3;
    this.max = opts.max ?? 5e3;
    this.factor = opts.factor ?? 2;
    this.jitter = Math.min(Math.max(opts.jitter ?? 0.5, 0), 1);
    this.random = opts.random ?? Math.random;
    this.attempts = 0;
  }
  /** The next delay in milliseconds; each call counts one attempt. */
  duration() {
    let ms = Math.min(this.min * Math.pow(this.factor, this.attempts++), this.max);
    if (this.jitter > 0) {
      const deviation = this.jitter * ms;
      ms = ms - deviation + this.random() * 2 * deviation;
    }
    return Math.floor(Math.min(ms, this.max));
  }
  /** Starts over from the minimum delay. */
  reset() {
    this.attempts = 0;
  }
  setMin(min) {
    this.min = min;
  }
  setMax(max) {
    this.max = max;
  }
  setJitter(jitter) {
    this.jitter = jitter;
  }
};

// src/sio-parser.js
var sio_parser_exports = {};
__export(sio_parser_exports, {
  Decoder: () => Decoder,
  PacketType: () => PacketType,
  RESERVED_EVENTS: () => RESERVED_EVENTS,
  decodeString: () => decodeString,
  deconstruct: () => deconstruct,
  encode: () => encode,
  hasBinary: () => hasBinary,
  reconstruct: () => reconstruct
});
var PacketType = Object.freeze({
  CONNECT: 0,
  DISCONNECT: 1,
  EVENT: 2,
  ACK: 3,
  CONNECT_ERROR: 4,
  BINARY_EVENT: 5,
  BINARY_ACK: 6
});
var RESERVED_EVENTS = Object.freeze([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener"
]);
function hasBinary(value, depth = 0) {
  if (value === null || typeof value !== "object" || depth > 100) return false;
  if (isBinary(value) || typeof Blob !== "undefined" && value instanceof Blob) return true;
  if (Array.isArray(value)) return value.some((v) => hasBinary(v, depth + 1));
  if (typeof /** @type {any} */
  value.toJSON === "function") return false;
  return Object.values(value).some((v) => hasBinary(v, depth + 1));
}
function deconstruct(data) {
  const attachments = [];
  const walk = (v) => {
    if (v === null || typeof v !== "object") return v;
    if (typeof Blob !== "undefined" && v instanceof Blob) {
      throw new TypeError("Blob/File values are not supported: send await blob.arrayBuffer() instead");
    }
    if (isBinary(v)) {
      attachments.push(v);
      return { _placeholder: true, num: attachments.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v.toJSON === "function") return v;
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x);
    return out;
  };
  return { data: walk(data), attachments };
}
function reconstruct(data, attachments) {
  const walk = (v) => {
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) return v.map(walk);
    if (v._placeholder === true) {
      if (typeof v.num !== "number" || !Number.isInteger(v.num) || v.num < 0 || v.num >= attachments.length) {
        throw new Error("illegal attachment placeholder");
      }
      return attachments[v.num];
    }
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x);
    return out;
  };
  return walk(data);
}
function encode(packet) {
  let { type, data } = packet;
  let attachments = [];
  if ((type === PacketType.EVENT || type === PacketType.ACK) && hasBinary(data)) {
    type = type === PacketType.EVENT ? PacketType.BINARY_EVENT : PacketType.BINARY_ACK;
    ({ data, attachments } = deconstruct(data));
  } else if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) {
    ({ data, attachments } = deconstruct(data));
  }
  let str = String(type);
  if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) str += attachments.length + "-";
  if (packet.nsp && packet.nsp !== "/") str += packet.nsp + ",";
  if (packet.id !== void 0 && packet.id !== null) str += String(packet.id);
  if (data !== void 0) str += JSON.stringify(data);
  return [str, ...attachments];
}
function decodeString(str) {
  let i = 0;
  const type = str.charCodeAt(0) - 48;
  if (!(type >= 0 && type <= 6) || str.length === 0) throw new Error(`unknown packet type ${JSON.stringify(str[0] ?? "")}`);
  i = 1;
  const packet = { type, nsp: "/" };
  if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) {
    const dash = str.indexOf("-", i);
    const digits = dash < 0 ? "" : str.slice(i, dash);
    if (!/^[0-9]+$/.test(digits)) throw new Error("illegal attachments");
    packet.attachments = Number(digits);
    i = dash + 1;
  }
  if (str[i] === "/") {
    const comma = str.indexOf(",", i);
    const end = comma < 0 ? str.length : comma;
    packet.nsp = str.slice(i, end);
    i = comma < 0 ? str.length : comma + 1;
  }
  let j = i;
  while (j < str.length && str.charCodeAt(j) >= 48 && str.charCodeAt(j) <= 57) j++;
  if (j > i) {
    packet.id = Number(str.slice(i, j));
    if (!Number.isSafeInteger(packet.id)) throw new Error("illegal ack id");
    i = j;
  }
  if (i < str.length) {
    try {
      packet.data = JSON.parse(str.slice(i));
    } catch {
      throw new Error("invalid JSON payload");
    }
  }
  if (!isPayloadValid(packet)) throw new Error("invalid payload");
  return packet;
}
function isPayloadValid(p) {
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  switch (p.type) {
    case PacketType.CONNECT:
      return p.data === void 0 || isObject(p.data);
    case PacketType.DISCONNECT:
      return p.data === void 0;
    case PacketType.CONNECT_ERROR:
      return typeof p.data === "string" || isObject(p.data);
    case PacketType.EVENT:
    case PacketType.BINARY_EVENT:
      return Array.isArray(p.data) && (typeof p.data[0] === "number" || typeof p.data[0] === "string" && !RESERVED_EVENTS.includes(p.data[0]));
    case PacketType.ACK:
    case PacketType.BINARY_ACK:
      return Array.isArray(p.data);
    default:
      return false;
  }
}
var Decoder = class extends Emitter {
  constructor({ maxAttachments = 10 } = {}) {
    super();
    this.maxAttachments = maxAttachments;
    this._pending = null;
  }
  /**
   * @param {string | ArrayBuffer} message
   */
  add(message) {
    if (typeof message === "string") {
      if (this._pending) throw new Error("got a text packet while reconstructing a binary packet");
      const packet = decodeString(message);
      if (packet.type === PacketType.BINARY_EVENT || packet.type === PacketType.BINARY_ACK) {
        if (
          /** @type {number} */
          packet.attachments > this.maxAttachments
        ) throw new Error("too many attachments");
        if (packet.attachments === 0) {
          this._finish(packet, []);
        } else {
          this._pending = { packet, buffers: [] };
        }
      } else {
        this.emitEvent("decoded", packet);
      }
      return;
    }
    if (!this._pending) throw new Error("got a binary message without a binary packet");
    this._pending.buffers.push(message);
    if (this._pending.buffers.length === this._pending.packet.attachments) {
      const { packet, buffers } = this._pending;
      this._pending = null;
      this._finish(packet, buffers);
    }
  }
  /**
   * @param {SioPacket} packet
   * @param {ArrayBuffer[]} buffers
   */
  _finish(packet, buffers) {
    const data = reconstruct(packet.data, buffers);
    const type = packet.type === PacketType.BINARY_EVENT ? PacketType.EVENT : PacketType.ACK;
    const out = { type, nsp: packet.nsp, data };
    if (packet.id !== void 0) out.id = packet.id;
    this.emitEvent("decoded", out);
  }
  /** Forgets a half-received binary packet (after the connection closed). */
  destroy() {
    this._pending = null;
  }
};

// src/socket.js
var INTERNAL = /* @__PURE__ */ new Set([...RESERVED_EVENTS]);
var Socket = class extends Emitter {
  /**
   * @param {import('./manager.js').Manager} io
   * @param {string} nsp
   * @param {SocketOptions} [opts]
   */
  constructor(io2, nsp, opts = {}) {
    super();
    this.io = io2;
    this.nsp = nsp;
    this.auth = opts.auth;
    this.ackTimeout = opts.ackTimeout;
    this.id = void 0;
    this.connected = false;
    this.recovered = false;
    this.sendBuffer = [];
    this.receiveBuffer = [];
    this.acks = /* @__PURE__ */ new Map();
    this._ids = 0;
    this.flags = {};
    this._anyListeners = [];
    this._subs = null;
    this._pid = void 0;
    this._lastOffset = void 0;
    this._lastSeq = void 0;
    if (io2.opts.autoConnect !== false) this.open();
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
    const io2 = this.io;
    const on = (event, fn) => {
      io2.on(event, fn);
      return () => io2.off(event, fn);
    };
    this._subs = [
      on("open", () => this._onOpen()),
      on("packet", (p) => this._onPacket(p)),
      on("error", (err) => {
        if (!this.connected) this.emitEvent("connect_error", err);
      }),
      on("close", (reason, err) => this._onClose(reason, err))
    ];
  }
  /** Connects (also after a disconnect()). */
  connect() {
    if (this.connected) return this;
    this._subEvents();
    if (!this.io._reconnecting) this.io.open();
    if (this.io.readyState === "open") this._onOpen();
    return this;
  }
  open() {
    return this.connect();
  }
  _onOpen() {
    const send = (data) => {
      const auth = { ...data ?? {} };
      if (this._pid) {
        auth.pid = this._pid;
        auth.offset = this._lastOffset;
      }
      this._packet({ type: PacketType.CONNECT, data: auth });
    };
    if (typeof this.auth === "function") this.auth(send);
    else send(this.auth);
  }
  /** @param {{ type: number, nsp?: string, data?: any, id?: number }} packet */
  _packet(packet) {
    packet.nsp = this.nsp;
    this.io._packet(
      /** @type {import('./sio-parser.js').SioPacket} */
      packet
    );
  }
  /** @param {import('./sio-parser.js').SioPacket} packet */
  _onPacket(packet) {
    if (packet.nsp !== this.nsp) return;
    switch (packet.type) {
      case PacketType.CONNECT:
        if (packet.data && typeof packet.data.sid === "string") {
          this._onConnect(packet.data.sid, packet.data.pid);
        } else {
          this.emitEvent("connect_error", new Error("invalid CONNECT answer from the server (is it Socket.IO v3+?)"));
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
        this._onClose("io server disconnect");
        break;
      case PacketType.CONNECT_ERROR: {
        this._destroy();
        const data = packet.data;
        const message = typeof data === "string" ? data : data?.message ?? "connect error";
        const err = new Error(message);
        err.data = typeof data === "object" ? data.data : void 0;
        this.emitEvent("connect_error", err);
        break;
      }
      default:
        break;
    }
  }
  /** @param {import('./sio-parser.js').SioPacket} packet */
  _onEvent(packet) {
    const args = (
      /** @type {any[]} */
      packet.data.slice()
    );
    if (packet.id !== void 0) args.push(this._ackFn(packet.id));
    if (this.connected) this._emitEvent(args);
    else this.receiveBuffer.push(args);
  }
  /** @param {any[]} args */
  _emitEvent(args) {
    const last = args[args.length - 1];
    if (this._pid && typeof last === "string") {
      const seq = /^@(\d+)$/.exec(last);
      if (seq) {
        const n = Number(seq[1]);
        if (this._lastSeq !== void 0 && n <= this._lastSeq) return;
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
    const id = (
      /** @type {number} */
      packet.id
    );
    const ack = this.acks.get(id);
    if (!ack) return;
    this.acks.delete(id);
    const args = (
      /** @type {any[]} */
      packet.data
    );
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
      this._lastOffset = void 0;
      this._lastSeq = void 0;
    }
    this._pid = pid;
    this.connected = true;
    for (const args of this.receiveBuffer) this._emitEvent(args);
    this.receiveBuffer = [];
    const buffered = this.sendBuffer;
    this.sendBuffer = [];
    for (const packet of buffered) this._packet(packet);
    this.emitEvent("connect");
  }
  /**
   * @param {string} reason
   * @param {Error} [description]
   */
  _onClose(reason, description) {
    if (!this.connected && reason !== "io server disconnect" && reason !== "io client disconnect") {
      return;
    }
    this.connected = false;
    this.id = void 0;
    this._failSentAcks();
    this.emitEvent("disconnect", reason, description);
  }
  /** Acks that wait for an error (timeout/emitWithAck) and whose packet is gone fail now. */
  _failSentAcks() {
    const buffered = new Set(this.sendBuffer.map((p) => p.id));
    for (const [id, ack] of this.acks) {
      if (buffered.has(id) || !ack.withError) continue;
      this.acks.delete(id);
      ack.call(this, new Error("socket has been disconnected"));
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
    if (this.connected) this._onClose("io client disconnect");
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
    const packet = { type: PacketType.EVENT, nsp: this.nsp, data };
    if (typeof data[data.length - 1] === "function") {
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
    return this.emit("message", ...args);
  }
  /**
   * @param {number} id
   * @param {Function & { withError?: boolean }} fn
   * @param {number | undefined} timeout
   * @param {boolean} [errorFirst]  fn takes an error first even without a timeout (emitWithAck)
   */
  _registerAck(id, fn, timeout, errorFirst = false) {
    if (timeout === void 0) {
      if (errorFirst) {
        const wrapped2 = (...args) => fn.apply(this, args);
        wrapped2.withError = true;
        this.acks.set(id, wrapped2);
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
      const fn = (err, ...rest) => err ? reject(err) : resolve(rest[0]);
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
};

// src/manager.js
var Manager = class extends Emitter {
  /**
   * @param {string} [uri]  the server (default: this page's origin)
   * @param {ManagerOptions} [opts]
   */
  constructor(uri, opts = {}) {
    super();
    if (typeof uri === "object" && uri !== null) {
      opts = uri;
      uri = void 0;
    }
    this.uri = uri ?? globalThis.location?.origin;
    if (!this.uri) throw new Error("tidewire: a server URL is required outside a browser page");
    this.opts = opts;
    this.nsps = {};
    this._reconnection = opts.reconnection !== false;
    this._reconnectionAttempts = opts.reconnectionAttempts ?? Infinity;
    this.backoff = new Backoff({
      min: opts.reconnectionDelay ?? 1e3,
      max: opts.reconnectionDelayMax ?? 5e3,
      jitter: opts.randomizationFactor ?? 0.5
    });
    this._timeout = opts.timeout ?? 2e4;
    this._readyState = "closed";
    this.engine = null;
    this._reconnecting = false;
    this.skipReconnect = false;
    this._decoder = new Decoder();
    this._decoder.on("decoded", (packet) => this.emitEvent("packet", packet));
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
    if (v === void 0) return this._reconnection;
    this._reconnection = !!v;
    return this;
  }
  reconnectionAttempts(v) {
    if (v === void 0) return this._reconnectionAttempts;
    this._reconnectionAttempts = v;
    return this;
  }
  reconnectionDelay(v) {
    if (v === void 0) return this.backoff.min;
    this.backoff.setMin(v);
    return this;
  }
  reconnectionDelayMax(v) {
    if (v === void 0) return this.backoff.max;
    this.backoff.setMax(v);
    return this;
  }
  randomizationFactor(v) {
    if (v === void 0) return this.backoff.jitter;
    this.backoff.setJitter(v);
    return this;
  }
  timeout(v) {
    if (v === void 0) return this._timeout;
    this._timeout = v;
    return this;
  }
  /**
   * Opens the Engine.IO connection; `fn(err?)` is called once it is open or failed.
   * @param {(err?: Error) => void} [fn]
   */
  open(fn) {
    if (this._readyState !== "closed") {
      if (fn) fn();
      return this;
    }
    this.skipReconnect = false;
    const engine = new EngineSocket(this.uri, this.opts);
    this.engine = engine;
    this._readyState = "opening";
    let done = false;
    const settle = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (fn) fn(err);
    };
    engine.on("transport", (ev) => {
      this.lastTransportEvent = ev;
      this.emitEvent("transport", ev);
    });
    engine.on("transportFailed", (ev) => this.emitEvent("transportFailed", ev));
    engine.on("upgradeError", (err) => this.emitEvent("upgradeError", err));
    engine.on("open", () => {
      settle();
      this._readyState = "open";
      this.emitEvent("open");
    });
    engine.on("message", (data) => {
      try {
        this._decoder.add(data);
      } catch (err) {
        this._onEngineClose(
          "parse error",
          /** @type {Error} */
          err
        );
      }
    });
    engine.on("ping", () => this.emitEvent("ping"));
    engine.on("close", (reason, err) => {
      if (this.engine !== engine) return;
      if (this._readyState === "opening") {
        const error = err ?? new Error(reason === "forced close" ? "timeout" : reason);
        this.engine = null;
        this._cleanup();
        this._readyState = "closed";
        this.emitEvent("error", error);
        settle(error);
        if (!fn) this._maybeReconnectOnOpen();
        return;
      }
      this._onEngineClose(reason, err);
    });
    let timer;
    if (this._timeout > 0 && Number.isFinite(this._timeout)) {
      timer = setTimeout(() => {
        if (this._readyState !== "opening" || this.engine !== engine) return;
        engine.close();
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
    if (this._readyState === "closed" && !engine) return;
    this._onEngineClose("forced close");
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
    this._readyState = "closed";
    engine.close();
    this.backoff.reset();
    this.emitEvent("close", reason, err);
    if (this._reconnection && !this.skipReconnect) this.reconnect();
  }
  /** Schedules the next reconnection attempt (exponential backoff with jitter). */
  reconnect() {
    if (this._reconnecting || this.skipReconnect) return this;
    if (this.backoff.attempts >= this._reconnectionAttempts) {
      this.backoff.reset();
      this.emitEvent("reconnect_failed");
      this._reconnecting = false;
      return this;
    }
    const delay = this.backoff.duration();
    this._reconnecting = true;
    this._reconnectTimer = setTimeout(() => {
      if (this.skipReconnect) return;
      this.emitEvent("reconnect_attempt", this.backoff.attempts);
      if (this.skipReconnect) return;
      this.open((err) => {
        if (err) {
          this._reconnecting = false;
          this.reconnect();
          this.emitEvent("reconnect_error", err);
        } else {
          const attempt = this.backoff.attempts;
          this._reconnecting = false;
          this.backoff.reset();
          this.emitEvent("reconnect", attempt);
        }
      });
    }, delay);
    this.emitEvent("reconnect_scheduled", { delay, attempt: this.backoff.attempts });
    return this;
  }
};

// src/index.js
var cache = /* @__PURE__ */ new Map();
function io(url, opts) {
  if (typeof url === "object" && url !== null) {
    opts = url;
    url = void 0;
  }
  opts = { ...opts ?? {} };
  const base = globalThis.location?.href;
  if (url === void 0 && !base) throw new Error("tidewire: io() needs a URL outside a browser page");
  const parsed = new URL(url ?? "/", base);
  const origin = `${parsed.protocol}//${parsed.host}`;
  const nsp = decodeURIComponent(parsed.pathname) || "/";
  if (parsed.search) {
    const query = { ...opts.query ?? {} };
    for (const [k, v] of parsed.searchParams) query[k] = v;
    opts.query = query;
  }
  const key = `${origin}${opts.path ?? "/socket.io/"}`;
  const cached = cache.get(key);
  const newConnection = opts.forceNew || opts["force new connection"] || opts.multiplex === false || cached && cached.nsps[nsp];
  let manager;
  if (newConnection) {
    manager = new Manager(origin, opts);
  } else {
    manager = cached ?? new Manager(origin, opts);
    if (!cached) cache.set(key, manager);
  }
  return manager.socket(nsp, opts);
}
var protocol = 5;
var index_default = io;
export {
  Backoff,
  DEFAULT_TRANSPORTS,
  DEFAULT_TRANSPORT_TIMEOUTS,
  EngineSocket,
  Manager,
  Socket,
  SseParser,
  TransportMemory,
  io as connect,
  index_default as default,
  engine_parser_exports as engineParser,
  io,
  sio_parser_exports as parser,
  protocol
};
