// A streaming parser for the `text/event-stream` format (WHATWG HTML, "Server-sent
// events", interpreting an event stream). Feed it bytes or strings as they arrive,
// split anywhere; it returns the complete events.
//
// Lines end with CRLF, LF or CR. `data:` lines are joined with LF; `id:` sets the last
// event id (kept across events, ignored when it contains NUL); `event:` sets the type;
// `retry:` is reported; lines starting with `:` are comments; a blank line dispatches.
// An event whose data buffer is empty is not dispatched (but its id still counts).

/** @typedef {{ type: string, data: string, id: string }} SseEvent */

export class SseParser {
  constructor() {
    this._decoder = new TextDecoder('utf-8');
    this._buffer = '';
    this._skipLF = false;
    this._bomChecked = false;
    this._data = '';
    this._hasData = false;
    this._type = '';
    /** The last event id seen so far (the stream's "last event ID buffer"). */
    this.lastEventId = '';
    /** @type {number | undefined} */
    this.retry = undefined;
  }

  /**
   * @param {Uint8Array | string} chunk
   * @returns {SseEvent[]}
   */
  feed(chunk) {
    let text = typeof chunk === 'string' ? chunk : this._decoder.decode(chunk, { stream: true });
    if (!this._bomChecked && text.length > 0) {
      this._bomChecked = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    /** @type {SseEvent[]} */
    const events = [];
    let start = 0;
    const buf = this._buffer + text;
    let i = 0;
    if (this._skipLF && buf.length > 0) {
      if (buf[0] === '\n') {
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
          // CR at the end of what we have: an LF starting the next chunk belongs to it.
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
        const data = this._data.endsWith('\n') ? this._data.slice(0, -1) : this._data;
        events.push({ type: this._type || 'message', data, id: this.lastEventId });
      }
      this._data = '';
      this._hasData = false;
      this._type = '';
      return;
    }
    if (line[0] === ':') return;
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
    }
    switch (field) {
      case 'data':
        this._data += value + '\n';
        this._hasData = true;
        break;
      case 'event':
        this._type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }
}
