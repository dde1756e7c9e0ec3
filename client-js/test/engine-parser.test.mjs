import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodePacket, decodePayload, encodePacket, encodePayload, utf8Length } from '../src/engine-parser.js';

const bytes = (ab) => Array.from(new Uint8Array(ab));

test('encodes text packets as type digit + data', () => {
  assert.equal(encodePacket({ type: 'open', data: '{"sid":"x"}' }), '0{"sid":"x"}');
  assert.equal(encodePacket({ type: 'close' }), '1');
  assert.equal(encodePacket({ type: 'ping', data: 'probe' }), '2probe');
  assert.equal(encodePacket({ type: 'pong' }), '3');
  assert.equal(encodePacket({ type: 'message', data: 'héllo' }), '4héllo');
  assert.equal(encodePacket({ type: 'upgrade' }), '5');
  assert.equal(encodePacket({ type: 'noop' }), '6');
  assert.equal(encodePacket({ type: 'message', data: '' }), '4');
});

test('encodes binary as b+base64 for text channels and raw bytes for WebSocket', () => {
  const data = new Uint8Array([0, 1, 2, 253, 254, 255]);
  assert.equal(encodePacket({ type: 'message', data }), 'bAAEC/f7/');
  assert.equal(encodePacket({ type: 'message', data: data.buffer }), 'bAAEC/f7/');
  const frame = encodePacket({ type: 'message', data }, true);
  assert.ok(frame instanceof Uint8Array);
  assert.deepEqual(Array.from(frame), [0, 1, 2, 253, 254, 255]);
  // a view on part of a buffer
  const view = new Uint8Array([9, 1, 2, 9]).subarray(1, 3);
  assert.equal(encodePacket({ type: 'message', data: view }), 'bAQI=');
  assert.throws(() => encodePacket({ type: 'ping', data: new Uint8Array(1) }), /only message/);
});

test('decodes text and binary packets', () => {
  assert.deepEqual(decodePacket('4hello'), { type: 'message', data: 'hello' });
  assert.deepEqual(decodePacket('2'), { type: 'ping' });
  assert.deepEqual(decodePacket('3probe'), { type: 'pong', data: 'probe' });
  const b = decodePacket('bAAEC/f7/');
  assert.equal(b.type, 'message');
  assert.ok(b.data instanceof ArrayBuffer);
  assert.deepEqual(bytes(b.data), [0, 1, 2, 253, 254, 255]);
  const raw = decodePacket(new Uint8Array([7, 8]).buffer);
  assert.deepEqual(bytes(raw.data), [7, 8]);
  const empty = decodePacket('b');
  assert.equal(empty.data.byteLength, 0);
});

test('rejects malformed packets', () => {
  assert.throws(() => decodePacket(''), /empty/);
  assert.throws(() => decodePacket('7'), /unknown packet type/);
  assert.throws(() => decodePacket('x'), /unknown packet type/);
  assert.throws(() => decodePacket('/'), /unknown packet type/);
  assert.throws(() => decodePacket('b!!!'), /base64/);
  assert.throws(() => decodePacket('bA'), /base64/);
  assert.throws(() => decodePayload(''), /empty/);
  assert.throws(() => decodePayload('4a\x1e\x1e4b'), /empty/);
});

test('payloads join packets with 0x1E and round-trip', () => {
  const packets = [
    { type: 'message', data: 'a' },
    { type: 'message', data: new Uint8Array([1, 2, 3]) },
    { type: 'ping' },
    { type: 'message', data: 'line\nbreak\rand\u2028' },
  ];
  const payload = encodePayload(packets);
  assert.equal(payload, '4a\x1ebAQID\x1e2\x1e4line\nbreak\rand\u2028');
  const back = decodePayload(payload);
  assert.equal(back.length, 4);
  assert.equal(back[0].data, 'a');
  assert.deepEqual(bytes(back[1].data), [1, 2, 3]);
  assert.deepEqual(back[2], { type: 'ping' });
  assert.equal(back[3].data, 'line\nbreak\rand\u2028');
});

test('utf8Length counts UTF-8 bytes', () => {
  assert.equal(utf8Length('abc'), 3);
  assert.equal(utf8Length('é'), 2);
  assert.equal(utf8Length('€'), 3);
  assert.equal(utf8Length('😀'), 4);
  assert.equal(utf8Length('a😀é'), 7);
});
