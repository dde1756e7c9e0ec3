// (Lives outside test/ so `node --test` does not run it as a test file.)
// Fake transports for unit tests of the engine's transport selection: each one does
// what its behaviour says (hang, fail, open without the open packet, open normally,
// answer a WebSocket upgrade probe). Not a test file.

import { Transport } from '../src/transports/transport.js';

export const HANDSHAKE = {
  sid: 'fake-sid',
  upgrades: ['websocket'],
  pingInterval: 25000,
  pingTimeout: 20000,
  maxPayload: 1000000,
};

/**
 * @param {Record<string, string | ((t: any) => void)>} behaviours  by transport name:
 *   'hang' | 'fail' | 'silent' (opens, never sends the open packet) | 'open' | 'probe-ok' (websocket: answers a probe)
 *   or a function called with the transport on open()
 * @param {object} [handshake]
 */
export function fakeTransports(behaviours, handshake = HANDSHAKE) {
  /** @type {any[]} */
  const created = [];
  const make = (name) =>
    class extends Transport {
      get name() {
        return name;
      }
      constructor(opts) {
        super(opts);
        this.sent = [];
        this.paused = false;
        created.push(this);
      }
      open() {
        const b = behaviours[name] ?? 'fail';
        if (typeof b === 'function') return b(this);
        setTimeout(() => {
          if (this.closed) return;
          if (b === 'fail') this._onClose('transport error', new Error(`${name} refused`));
          if (b === 'silent' || b === 'open' || b === 'probe-ok') {
            this.writable = true;
            this.emitEvent('open');
          }
          if (b === 'open' && !this.opts.sid) this.serverSend({ type: 'open', data: JSON.stringify(handshake) });
        }, 1);
      }
      serverSend(packet) {
        this._onPacket(packet);
      }
      send(packets) {
        this.sent.push(...packets);
        this.writable = false;
        for (const p of packets) {
          if (behaviours[name] === 'probe-ok' && p.type === 'ping' && p.data === 'probe') {
            setTimeout(() => this.serverSend({ type: 'pong', data: 'probe' }), 1);
          }
        }
        this.emitEvent('sent', packets);
        setTimeout(() => {
          if (this.closed) return;
          this.writable = true;
          this.emitEvent('drain');
        }, 0);
      }
      pause() {
        this.paused = true;
        return Promise.resolve();
      }
      close() {
        super.close();
      }
    };
  return {
    created,
    factories: { websocket: make('websocket'), sse: make('sse'), polling: make('polling') },
    /** @param {string} name */
    names: () => created.map((t) => `${t.name}${t.opts.sid ? '(probe)' : ''}`),
  };
}
