// Engine.IO v4 packet and payload codec.
//
// A packet is { type, data } with type one of open, close, ping, pong, message,
// upgrade, noop. `data` is a string, or an ArrayBuffer for binary messages.
// On WebSocket a packet is one frame (binary frames carry binary messages as they
// are); on polling and SSE a binary message is `b` + base64. A polling payload
// joins packets with the record separator 0x1E.

import { base64ToBytes, bytesToBase64, asBytes, isBinary, toArrayBuffer } from './base64.js';

export const PACKET_TYPES = /** @type {const} */ (['open', 'close', 'ping', 'pong', 'message', 'upgrade', 'noop']);
export const SEPARATOR = '\x1e';

/** @typedef {{ type: 'open'|'close'|'ping'|'pong'|'message'|'upgrade'|'noop', data?: string | ArrayBuffer }} EnginePacket */

/**
 * Encodes a packet for a text channel (polling, SSE, or a WebSocket text frame when
 * `binaryFrames` is false). Binary messages become `b<base64>`.
 * With `binaryFrames` (WebSocket), a binary message is returned as a Uint8Array.
 * @param {EnginePacket} packet
 * @param {boolean} [binaryFrames]
 * @returns {string | Uint8Array}
 */
export function encodePacket(packet, binaryFrames = false) {
  const code = PACKET_TYPES.indexOf(packet.type);
  if (code < 0) throw new Error(`unknown packet type ${packet.type}`);
  const { data } = packet;
  if (data !== undefined && isBinary(data)) {
    if (packet.type !== 'message') throw new Error('only message packets can be binary');
    return binaryFrames ? asBytes(data) : 'b' + bytesToBase64(asBytes(data));
  }
  return String(code) + (data ?? '');
}

/**
 * Decodes one packet: a string (text frame, polling/SSE record) or binary (WebSocket binary frame).
 * Throws an Error on malformed input.
 * @param {string | ArrayBuffer | ArrayBufferView} raw
 * @returns {EnginePacket}
 */
export function decodePacket(raw) {
  if (typeof raw !== 'string') {
    return { type: 'message', data: toArrayBuffer(new Uint8Array(asBytes(raw))) };
  }
  if (raw.length === 0) throw new Error('empty packet');
  if (raw[0] === 'b') {
    let bytes;
    try {
      bytes = base64ToBytes(raw.slice(1));
    } catch {
      throw new Error('invalid base64 in binary packet');
    }
    return { type: 'message', data: toArrayBuffer(bytes) };
  }
  const code = raw.charCodeAt(0) - 48;
  const type = PACKET_TYPES[code];
  if (type === undefined || code < 0) throw new Error(`unknown packet type ${JSON.stringify(raw[0])}`);
  return raw.length > 1 ? { type, data: raw.slice(1) } : { type };
}

/**
 * @param {EnginePacket[]} packets
 * @returns {string}
 */
export function encodePayload(packets) {
  return packets.map((p) => /** @type {string} */ (encodePacket(p, false))).join(SEPARATOR);
}

/**
 * @param {string} payload
 * @returns {EnginePacket[]}
 */
export function decodePayload(payload) {
  if (payload.length === 0) throw new Error('empty payload');
  return payload.split(SEPARATOR).map(decodePacket);
}

/**
 * Length in bytes of `text` as UTF-8 (used to respect the server's maxPayload).
 * @param {string} text
 */
export function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
