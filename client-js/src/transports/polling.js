// The HTTP long-polling transport: a GET loop downstream, POSTs upstream, payloads of
// packets joined by 0x1E. At most one GET and one POST in flight.

import { Transport, httpError } from './transport.js';
import { decodePayload, encodePayload } from '../engine-parser.js';

export class PollingTransport extends Transport {
  get name() {
    return 'polling';
  }

  constructor(opts) {
    super(opts);
    this._counter = 0;
    this._polling = false;
    this._posting = false;
    this._paused = false;
    /** @type {((value?: any) => void)[]} */
    this._pauseWaiters = [];
    this._abort = new AbortController();
    // Sequence number of the last packet received (tidewire servers number poll
    // answers in `x-tidewire-seq`); sent back as `ack` so a lost answer is sent again.
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
    return { ...(this.opts.extraHeaders ?? {}), ...extra };
  }

  async _poll() {
    if (this.closed || this._paused || this._polling) return;
    this._polling = true;
    const first = !this.sid;
    try {
      const query = first ? { t: this._cacheBuster() } : { t: this._cacheBuster(), ack: String(this._ack) };
      const res = await this.fetch(this.uri(query), {
        method: 'GET',
        headers: this._headers(),
        credentials: this.opts.credentials ?? 'same-origin',
        cache: 'no-store',
        signal: this._abort.signal,
      });
      if (!res.ok) throw await httpError(res);
      const body = await res.text();
      if (this.closed) return;
      const packets = decodePayload(body);
      const seq = Number(res.headers.get('x-tidewire-seq'));
      if (Number.isSafeInteger(seq) && seq > 0) this._ack = seq;
      this._retries = 0;
      if (first) {
        this.writable = true;
        this.emitEvent('open');
      }
      for (const p of packets) {
        if (this.closed) return;
        this._onPacket(p);
        if (p.type === 'close') {
          this._onClose('transport close');
          return;
        }
      }
    } catch (err) {
      this._polling = false;
      // A GET cut at the network level (not an HTTP error) is retried a couple of
      // times: the server sends unconfirmed packets again, so nothing is lost.
      const httpFailure = /** @type {any} */ (err)?.status !== undefined;
      if (!this.closed && !first && !httpFailure && !this._paused && this._retries < 2) {
        this._retries++;
        setTimeout(() => this._poll(), 100 * this._retries);
        return;
      }
      if (!this.closed) this._onClose('transport error', /** @type {Error} */ (err));
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
        method: 'POST',
        headers: this._headers({ 'Content-Type': 'text/plain;charset=UTF-8' }),
        credentials: this.opts.credentials ?? 'same-origin',
        body: encodePayload(packets),
      });
      if (!res.ok) throw await httpError(res);
      await res.text();
    } catch (err) {
      this._posting = false;
      if (!this.closed) this._onClose('transport error', /** @type {Error} */ (err));
      this._checkPaused();
      return;
    }
    this._posting = false;
    this._checkPaused();
    if (this.closed) return;
    this.writable = true;
    this.emitEvent('drain');
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
}
