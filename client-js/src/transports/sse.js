// tidewire's SSE transport (docs/sse.md): downstream one `text/event-stream` response
// read with fetch, upstream POSTs of polling payloads carrying `ack=<last event id>`.
// A stream that drops while the session lives is reopened with Last-Event-ID.

import { Transport, httpError } from './transport.js';
import { decodePacket, encodePayload } from '../engine-parser.js';
import { SseParser } from '../sse-parser.js';
import { base64ToBytes, utf8Decode } from '../base64.js';

/** How many times in a row a dropped stream is reopened before the transport gives up. */
const MAX_RESUMES = 3;
/**
 * The server keeps every packet until it is confirmed, and writes at most
 * `max_buffered_packets` (4096 by default) unconfirmed ones before it waits for a
 * confirmation. A client that only listens would confirm once per ping interval
 * (with its pong), which a busy room outruns: confirm after this many packets (a
 * quarter of the default window, so the stream seldom waits for the round trip; in
 * the fan-out benchmark 1024 beat 512, whose POSTs cost the server more, and 2048,
 * which let a busy stream wait), or this long after the first unconfirmed one.
 *
 * Every client in a room receives the same events at the same moment; with the same
 * count and the same timer they would all POST at once, a burst the server answers
 * while everyone's events wait. So each client confirms at its own phase: its first
 * count is a random share of CONFIRM_AFTER_PACKETS, and each timer a random 50–100 %
 * of CONFIRM_AFTER_MS. (In the fan-out benchmark, 200 clients at 1000 packets/s:
 * p99 latency 24–37 ms in step, 4–7 ms spread.)
 */
const CONFIRM_AFTER_PACKETS = 1024;
const CONFIRM_AFTER_MS = 1000;

export class SseTransport extends Transport {
  get name() {
    return 'sse';
  }

  constructor(opts) {
    super(opts);
    /** The id of the last event received (what `ack=` and Last-Event-ID carry). */
    this.lastEventId = '';
    this._resumes = 0;
    this._posting = false;
    this._paused = false;
    /** @type {((value?: any) => void)[]} */
    this._pauseWaiters = [];
    /** @type {AbortController | null} */
    this._abort = null;
    this._opened = false;
    /** @type {(() => void) | null} */
    this._onStreamEnd = null;
    this._counter = 0;
    /** Packets received since the last POST carried `ack=`. */
    this._unconfirmed = 0;
    /** How many unconfirmed packets make a confirmation due (the first one at a random phase). */
    this._confirmAfter = 1 + Math.floor(Math.random() * CONFIRM_AFTER_PACKETS);
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._confirmTimer = null;
  }

  open() {
    this._stream();
  }

  _headers(extra = {}) {
    return { ...(this.opts.extraHeaders ?? {}), ...extra };
  }

  async _stream() {
    const abort = new AbortController();
    this._abort = abort;
    const headers = this._headers({ Accept: 'text/event-stream' });
    /** @type {Record<string, string>} */
    const extra = { t: this._cacheBuster() };
    if (this.lastEventId) {
      // A Last-Event-ID header makes a cross-origin request non-simple (a CORS preflight
      // per resume): there the query parameter docs/sse.md allows does the same.
      if (crossOrigin(this.opts.url)) extra.lastEventId = this.lastEventId;
      else headers['Last-Event-ID'] = this.lastEventId;
    }
    let reader;
    try {
      const res = await this.fetch(this.uri(extra), {
        method: 'GET',
        headers,
        credentials: this.opts.credentials ?? 'same-origin',
        cache: 'no-store',
        signal: abort.signal,
      });
      if (!res.ok) throw await httpError(res);
      const type = res.headers.get('content-type') ?? '';
      if (!type.toLowerCase().startsWith('text/event-stream')) {
        throw new Error(`expected text/event-stream, got ${type || 'no content type'}`);
      }
      if (!res.body) throw new Error('response has no readable body');
      reader = res.body.getReader();
    } catch (err) {
      if (abort.signal.aborted || this.closed) return;
      this._onClose('transport error', /** @type {Error} */ (err));
      return;
    }
    if (!this._opened) {
      this._opened = true;
      this.writable = true;
      this.emitEvent('open');
    }
    const parser = new SseParser();
    let failure;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || this.closed || abort.signal.aborted) break;
        for (const event of parser.feed(value)) {
          if (this.closed || abort.signal.aborted) break;
          this._event(event);
        }
      }
    } catch (err) {
      failure = /** @type {Error} */ (err);
    }
    try {
      reader.cancel().catch(() => {});
    } catch {
      // ignore
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
    /** @type {string[]} */
    let raws;
    try {
      raws = event.type === 't64' ? [utf8Decode(base64ToBytes(event.data))] : event.data.split('\x1e');
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
      if (packet.type === 'close') {
        this._abort?.abort();
        this._onClose('transport close');
        return;
      }
      if (packet.type === 'noop' && this._onStreamEnd) {
        // During an upgrade the noop is the stream's last event (docs/sse.md).
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
    this._onClose('transport error', new Error(`invalid SSE event: ${/** @type {Error} */ (err).message}`));
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
      this._onClose('transport error', failure ?? new Error('SSE stream ended before the open packet'));
      return;
    }
    if (this._resumes >= MAX_RESUMES) {
      this._onClose('transport close', failure ?? new Error('SSE stream ended'));
      return;
    }
    // The session may still live: reopen the stream where it stopped.
    const delay = this._resumes === 0 ? 0 : 250 * this._resumes;
    this._resumes++;
    this.emitEvent('resume', { lastEventId: this.lastEventId });
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
      // The POST in flight may predate these events: look again after it.
      this._confirmLater();
      return;
    }
    this.send([{ type: 'noop' }]);
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
    /** @type {Record<string, string>} */
    const extra = { t: this._cacheBuster() };
    if (this.lastEventId) extra.ack = this.lastEventId;
    this._unconfirmed = 0;
    this._confirmAfter = CONFIRM_AFTER_PACKETS;
    this._stopConfirming();
    try {
      const res = await this.fetch(this.uri(extra), {
        method: 'POST',
        headers: this._headers({ 'Content-Type': 'text/plain;charset=UTF-8' }),
        credentials: this.opts.credentials ?? 'same-origin',
        body: encodePayload(packets),
      });
      if (!res.ok) throw await httpError(res);
      await res.text();
    } catch (err) {
      this._posting = false;
      this._checkPaused();
      if (!this.closed) {
        this._abort?.abort();
        this._onClose('transport error', /** @type {Error} */ (err));
      }
      return;
    }
    this._posting = false;
    this._checkPaused();
    if (this.closed) return;
    this.writable = true;
    this.emitEvent('drain');
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
}

/** @param {string} url */
function crossOrigin(url) {
  const here = globalThis.location?.origin;
  return typeof here === 'string' && here !== 'null' && new URL(url).origin !== here;
}
