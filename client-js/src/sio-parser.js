// Socket.IO v5 packet codec.
//
// Text form: <type>[<attachments>-][<nsp>,][<ack id>][<JSON data>]
// Binary values (ArrayBuffer, typed arrays, DataView) are replaced in the JSON by
// {"_placeholder":true,"num":n} and sent as n separate binary Engine.IO messages
// following the text packet (types BINARY_EVENT 5 and BINARY_ACK 6).

import { Emitter } from './emitter.js';
import { isBinary } from './base64.js';

export const PacketType = Object.freeze({
  CONNECT: 0,
  DISCONNECT: 1,
  EVENT: 2,
  ACK: 3,
  CONNECT_ERROR: 4,
  BINARY_EVENT: 5,
  BINARY_ACK: 6,
});

/** Event names a socket cannot emit (they are used by the client itself). */
export const RESERVED_EVENTS = Object.freeze([
  'connect',
  'connect_error',
  'disconnect',
  'disconnecting',
  'newListener',
  'removeListener',
]);

/** @typedef {{ type: number, nsp: string, data?: any, id?: number, attachments?: number }} SioPacket */

/**
 * Whether `value` holds binary data anywhere inside (arrays and plain objects).
 * @param {unknown} value
 * @param {number} [depth]
 * @returns {boolean}
 */
export function hasBinary(value, depth = 0) {
  if (value === null || typeof value !== 'object' || depth > 100) return false;
  if (isBinary(value) || (typeof Blob !== 'undefined' && value instanceof Blob)) return true;
  if (Array.isArray(value)) return value.some((v) => hasBinary(v, depth + 1));
  if (typeof (/** @type {any} */ (value).toJSON) === 'function') return false;
  return Object.values(value).some((v) => hasBinary(v, depth + 1));
}

/**
 * Replaces binary values by placeholders; returns the new data and the attachments.
 * @param {any} data
 * @returns {{ data: any, attachments: (ArrayBuffer | ArrayBufferView)[] }}
 */
export function deconstruct(data) {
  /** @type {(ArrayBuffer | ArrayBufferView)[]} */
  const attachments = [];
  const walk = (v) => {
    if (v === null || typeof v !== 'object') return v;
    if (typeof Blob !== 'undefined' && v instanceof Blob) {
      // Reading a Blob is asynchronous; send `await blob.arrayBuffer()` instead.
      throw new TypeError('Blob/File values are not supported: send await blob.arrayBuffer() instead');
    }
    if (isBinary(v)) {
      attachments.push(v);
      return { _placeholder: true, num: attachments.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v.toJSON === 'function') return v;
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x);
    return out;
  };
  return { data: walk(data), attachments };
}

/**
 * Puts the attachments back in place of their placeholders. Throws on a bad placeholder.
 * @param {any} data
 * @param {ArrayBuffer[]} attachments
 */
export function reconstruct(data, attachments) {
  const walk = (v) => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(walk);
    if (v._placeholder === true) {
      if (typeof v.num !== 'number' || !Number.isInteger(v.num) || v.num < 0 || v.num >= attachments.length) {
        throw new Error('illegal attachment placeholder');
      }
      return attachments[v.num];
    }
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = walk(x);
    return out;
  };
  return walk(data);
}

/**
 * Encodes a packet into what Engine.IO sends: one string, then the attachments.
 * EVENT/ACK packets holding binary are turned into BINARY_EVENT/BINARY_ACK.
 * @param {SioPacket} packet
 * @returns {(string | ArrayBuffer | ArrayBufferView)[]}
 */
export function encode(packet) {
  let { type, data } = packet;
  /** @type {(ArrayBuffer | ArrayBufferView)[]} */
  let attachments = [];
  if ((type === PacketType.EVENT || type === PacketType.ACK) && hasBinary(data)) {
    type = type === PacketType.EVENT ? PacketType.BINARY_EVENT : PacketType.BINARY_ACK;
    ({ data, attachments } = deconstruct(data));
  } else if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) {
    ({ data, attachments } = deconstruct(data));
  }
  let str = String(type);
  if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) str += attachments.length + '-';
  if (packet.nsp && packet.nsp !== '/') str += packet.nsp + ',';
  if (packet.id !== undefined && packet.id !== null) str += String(packet.id);
  if (data !== undefined) str += JSON.stringify(data);
  return [str, ...attachments];
}

/**
 * Parses the text part of a packet. Throws an Error on malformed input.
 * @param {string} str
 * @returns {SioPacket}
 */
export function decodeString(str) {
  let i = 0;
  const type = str.charCodeAt(0) - 48;
  if (!(type >= 0 && type <= 6) || str.length === 0) throw new Error(`unknown packet type ${JSON.stringify(str[0] ?? '')}`);
  i = 1;
  /** @type {SioPacket} */
  const packet = { type, nsp: '/' };
  if (type === PacketType.BINARY_EVENT || type === PacketType.BINARY_ACK) {
    const dash = str.indexOf('-', i);
    const digits = dash < 0 ? '' : str.slice(i, dash);
    if (!/^[0-9]+$/.test(digits)) throw new Error('illegal attachments');
    packet.attachments = Number(digits);
    i = dash + 1;
  }
  if (str[i] === '/') {
    const comma = str.indexOf(',', i);
    const end = comma < 0 ? str.length : comma;
    packet.nsp = str.slice(i, end);
    i = comma < 0 ? str.length : comma + 1;
  }
  let j = i;
  while (j < str.length && str.charCodeAt(j) >= 48 && str.charCodeAt(j) <= 57) j++;
  if (j > i) {
    packet.id = Number(str.slice(i, j));
    if (!Number.isSafeInteger(packet.id)) throw new Error('illegal ack id');
    i = j;
  }
  if (i < str.length) {
    try {
      packet.data = JSON.parse(str.slice(i));
    } catch {
      throw new Error('invalid JSON payload');
    }
  }
  if (!isPayloadValid(packet)) throw new Error('invalid payload');
  return packet;
}

/** @param {SioPacket} p */
function isPayloadValid(p) {
  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  switch (p.type) {
    case PacketType.CONNECT:
      return p.data === undefined || isObject(p.data);
    case PacketType.DISCONNECT:
      return p.data === undefined;
    case PacketType.CONNECT_ERROR:
      return typeof p.data === 'string' || isObject(p.data);
    case PacketType.EVENT:
    case PacketType.BINARY_EVENT:
      return (
        Array.isArray(p.data) &&
        (typeof p.data[0] === 'number' || (typeof p.data[0] === 'string' && !RESERVED_EVENTS.includes(p.data[0])))
      );
    case PacketType.ACK:
    case PacketType.BINARY_ACK:
      return Array.isArray(p.data);
    default:
      return false;
  }
}

/**
 * Turns Engine.IO messages back into Socket.IO packets, collecting the attachments of
 * binary packets. Emits `decoded` with each complete packet; `add` throws on malformed input.
 */
export class Decoder extends Emitter {
  constructor({ maxAttachments = 10 } = {}) {
    super();
    this.maxAttachments = maxAttachments;
    /** @type {{ packet: SioPacket, buffers: ArrayBuffer[] } | null} */
    this._pending = null;
  }

  /**
   * @param {string | ArrayBuffer} message
   */
  add(message) {
    if (typeof message === 'string') {
      if (this._pending) throw new Error('got a text packet while reconstructing a binary packet');
      const packet = decodeString(message);
      if (packet.type === PacketType.BINARY_EVENT || packet.type === PacketType.BINARY_ACK) {
        if (/** @type {number} */ (packet.attachments) > this.maxAttachments) throw new Error('too many attachments');
        if (packet.attachments === 0) {
          this._finish(packet, []);
        } else {
          this._pending = { packet, buffers: [] };
        }
      } else {
        this.emitEvent('decoded', packet);
      }
      return;
    }
    if (!this._pending) throw new Error('got a binary message without a binary packet');
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
    /** @type {SioPacket} */
    const out = { type, nsp: packet.nsp, data };
    if (packet.id !== undefined) out.id = packet.id;
    this.emitEvent('decoded', out);
  }

  /** Forgets a half-received binary packet (after the connection closed). */
  destroy() {
    this._pending = null;
  }
}
