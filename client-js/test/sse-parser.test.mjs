import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../src/sse-parser.js';

const enc = new TextEncoder();

/** Feeds `chunks` and returns all events. */
function parse(chunks) {
  const p = new SseParser();
  const out = [];
  for (const c of chunks) out.push(...p.feed(c));
  return out;
}

const STREAM =
  ': keep-alive\n\n' +
  'id: 1\ndata: 0{"sid":"abc","upgrades":["websocket"]}\n\n' +
  'id: 2\r\ndata: 4multi\r\ndata: line\r\n\r\n' +
  'id: 3\rdata: 4cr-only\r\r' +
  'id: 4\nevent: t64\ndata: NGENYg==\n\n' +
  'id: 5\ndata: bAQID\n\n' +
  ':\n\n' +
  'id: 6\ndata:4no-space\ndata\n\n' +
  'id: 7\ndata: 4h\u00e9llo \u20ac \ud83d\ude00\n\n';

const EXPECTED = [
  { type: 'message', id: '1', data: '0{"sid":"abc","upgrades":["websocket"]}' },
  { type: 'message', id: '2', data: '4multi\nline' },
  { type: 'message', id: '3', data: '4cr-only' },
  { type: 't64', id: '4', data: 'NGENYg==' },
  { type: 'message', id: '5', data: 'bAQID' },
  { type: 'message', id: '6', data: '4no-space\n' },
  { type: 'message', id: '7', data: '4h\u00e9llo \u20ac \ud83d\ude00' },
];

test('parses events with LF, CRLF and CR line ends, comments, multi-line data, t64', () => {
  assert.deepEqual(parse([STREAM]), EXPECTED);
  assert.deepEqual(parse([enc.encode(STREAM)]), EXPECTED);
});

test('gives the same events however the bytes are split', () => {
  const bytes = enc.encode(STREAM);
  for (let i = 0; i <= bytes.length; i++) {
    const events = parse([bytes.subarray(0, i), bytes.subarray(i)]);
    assert.deepEqual(events, EXPECTED, `split at byte ${i}`);
  }
  // and one byte at a time
  const single = [];
  for (let i = 0; i < bytes.length; i++) single.push(bytes.subarray(i, i + 1));
  assert.deepEqual(parse(single), EXPECTED);
});

test('CRLF split between two chunks is one line end', () => {
  const events = parse(['data: a\r', '\ndata: b\r', '\n\r', '\n']);
  assert.deepEqual(events, [{ type: 'message', id: '', data: 'a\nb' }]);
});

test('keeps the last event id across events and ignores ids with NUL', () => {
  const p = new SseParser();
  const events = p.feed('id: 9\ndata: x\n\ndata: y\n\nid: a\0b\ndata: z\n\n');
  assert.deepEqual(
    events.map((e) => e.id),
    ['9', '9', '9'],
  );
  assert.equal(p.lastEventId, '9');
});

test('does not dispatch events without data, resets the type, strips a BOM', () => {
  const events = parse(['\ufeffevent: t64\n\nid: 3\n\ndata: x\n\n', 'retry: 100\nfield-unknown: 1\ndata\n\n']);
  assert.deepEqual(events, [
    { type: 'message', id: '3', data: 'x' },
    { type: 'message', id: '3', data: '' },
  ]);
  const p = new SseParser();
  p.feed('retry: 1500\n\n');
  assert.equal(p.retry, 1500);
});

test('an unterminated event at the end of the stream is not dispatched', () => {
  assert.deepEqual(parse(['data: partial\n']), []);
});
