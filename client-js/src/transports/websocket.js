// The WebSocket transport: one Engine.IO packet per frame, binary messages as binary frames.

import { Transport } from './transport.js';
import { decodePacket, encodePacket } from '../engine-parser.js';

export class WebSocketTransport extends Transport {
  get name() {
    return 'websocket';
  }

  open() {
    const WS = this.opts.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') {
      queueMicrotask(() => this._onClose('transport error', new Error('no WebSocket implementation available')));
      return;
    }
    let ws;
    try {
      ws = new WS(this.uri({}, true));
    } catch (err) {
      queueMicrotask(() => this._onClose('transport error', /** @type {Error} */ (err)));
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (this.closed) return;
      this.writable = true;
      this.emitEvent('open');
    };
    ws.onmessage = (ev) => {
      let packet;
      try {
        packet = decodePacket(typeof ev.data === 'string' ? ev.data : toBinary(ev.data));
      } catch (err) {
        this._fail(new Error(`invalid packet: ${/** @type {Error} */ (err).message}`));
        return;
      }
      this._onPacket(packet);
    };
    ws.onerror = (ev) => {
      this._fail(new Error(`websocket error${ev && ev.message ? `: ${ev.message}` : ''}`));
    };
    ws.onclose = (ev) => {
      this._detach();
      this._onClose('transport close', new Error(`websocket closed (code ${ev?.code ?? '?'})`));
    };
  }

  /** @param {Error} err */
  _fail(err) {
    this._detach();
    try {
      this.ws?.close();
    } catch {
      // ignore
    }
    this._onClose('transport error', err);
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
      this._fail(/** @type {Error} */ (err));
      return;
    }
    // WebSocket.send queues; report the write done on the next tick like the HTTP transports.
    setTimeout(() => {
      if (this.closed) return;
      this.writable = true;
      this.emitEvent('drain');
    }, 0);
  }

  pause() {
    return Promise.resolve();
  }

  unpause() {}

  close() {
    super.close();
    this._detach();
    try {
      this.ws?.close();
    } catch {
      // ignore
    }
  }
}

/** @param {any} data */
function toBinary(data) {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data;
  if (Array.isArray(data)) {
    // node `ws` with binaryType 'nodebuffer' fragments: concatenate
    const total = data.reduce((n, b) => n + b.byteLength, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const b of data) {
      out.set(b, o);
      o += b.byteLength;
    }
    return out;
  }
  throw new Error('unsupported binary frame type (Blob?); binaryType must be arraybuffer');
}
