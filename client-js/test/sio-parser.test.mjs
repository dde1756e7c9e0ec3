import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, PacketType, decodeString, encode, hasBinary } from '../src/sio-parser.js';

function decodeAll(messages) {
  const d = new Decoder();
  const out = [];
  d.on('decoded', (p) => out.push(p));
  for (const m of messages) d.add(m);
  return out;
}

test('encodes packets with namespace, ack id and data', () => {
  assert.deepEqual(encode({ type: PacketType.CONNECT, nsp: '/' }), ['0']);
  assert.deepEqual(encode({ type: PacketType.CONNECT, nsp: '/admin', data: { token: 'x' } }), ['0/admin,{"token":"x"}']);
  assert.deepEqual(encode({ type: PacketType.DISCONNECT, nsp: '/admin' }), ['1/admin,']);
  assert.deepEqual(encode({ type: PacketType.EVENT, nsp: '/', data: ['hi', 1] }), ['2["hi",1]']);
  assert.deepEqual(encode({ type: PacketType.EVENT, nsp: '/', data: ['hi'], id: 12 }), ['212["hi"]']);
  assert.deepEqual(encode({ type: PacketType.ACK, nsp: '/x', data: [], id: 3 }), ['3/x,3[]']);
});

test('encodes binary as placeholders plus attachments', () => {
  const a = new Uint8Array([1, 2]);
  const b = new ArrayBuffer(3);
  const [head, ...att] = encode({ type: PacketType.EVENT, nsp: '/', data: ['up', { a, list: [b] }], id: 5 });
  assert.equal(head, '52-5["up",{"a":{"_placeholder":true,"num":0},"list":[{"_placeholder":true,"num":1}]}]');
  assert.equal(att.length, 2);
  assert.equal(att[0], a);
  assert.equal(att[1], b);
  const [ack] = encode({ type: PacketType.ACK, nsp: '/admin', data: [new Uint8Array(1)], id: 0 });
  assert.equal(ack, '61-/admin,0[{"_placeholder":true,"num":0}]');
  assert.ok(hasBinary([{ x: [new DataView(new ArrayBuffer(1))] }]));
  assert.ok(!hasBinary([{ x: [1, 'a', null] }]));
});

test('decodes text packets', () => {
  assert.deepEqual(decodeString('0{"sid":"abc"}'), { type: 0, nsp: '/', data: { sid: 'abc' } });
  assert.deepEqual(decodeString('0/admin,{"sid":"abc"}'), { type: 0, nsp: '/admin', data: { sid: 'abc' } });
  assert.deepEqual(decodeString('1/admin,'), { type: 1, nsp: '/admin' });
  assert.deepEqual(decodeString('1'), { type: 1, nsp: '/' });
  assert.deepEqual(decodeString('2["a",{"b":1}]'), { type: 2, nsp: '/', data: ['a', { b: 1 }] });
  assert.deepEqual(decodeString('2/chat,42["a"]'), { type: 2, nsp: '/chat', data: ['a'], id: 42 });
  assert.deepEqual(decodeString('3/chat,42[]'), { type: 3, nsp: '/chat', data: [], id: 42 });
  assert.deepEqual(decodeString('4{"message":"no","data":{"r":1}}'), {
    type: 4,
    nsp: '/',
    data: { message: 'no', data: { r: 1 } },
  });
  assert.deepEqual(decodeString('2[7]'), { type: 2, nsp: '/', data: [7] });
});

test('rejects malformed packets', () => {
  for (const bad of [
    '',
    '7',
    'x["a"]',
    '2',
    '2{"a":1}',
    '2[]',
    '2["connect"]',
    '2["a"',
    '3',
    '3{"a":1}',
    '0[1]',
    '0"str"',
    '1["a"]',
    '4',
    '4[1]',
    '5["a"]',
    '5x-["a"]',
    '2/nsp,99999999999999999999["a"]',
  ]) {
    assert.throws(() => decodeString(bad), Error, `should reject ${JSON.stringify(bad)}`);
  }
});

test('reassembles binary packets from their attachments', () => {
  const one = new Uint8Array([1, 2, 3]).buffer;
  const two = new Uint8Array([4]).buffer;
  const [p] = decodeAll([
    '52-/up,7["file",{"a":{"_placeholder":true,"num":1},"b":[{"_placeholder":true,"num":0}]}]',
    one,
    two,
  ]);
  assert.equal(p.type, PacketType.EVENT);
  assert.equal(p.nsp, '/up');
  assert.equal(p.id, 7);
  assert.equal(p.data[0], 'file');
  assert.equal(p.data[1].a, two);
  assert.equal(p.data[1].b[0], one);
  const [ack] = decodeAll(['61-3[{"_placeholder":true,"num":0}]', one]);
  assert.equal(ack.type, PacketType.ACK);
  assert.equal(ack.id, 3);
  assert.equal(ack.data[0], one);
  const [none] = decodeAll(['50-["x"]']);
  assert.deepEqual(none, { type: PacketType.EVENT, nsp: '/', data: ['x'] });
});

test('round-trips binary through encode and Decoder', () => {
  const body = new Uint8Array([0, 255, 10, 13]);
  const parts = encode({ type: PacketType.EVENT, nsp: '/', data: ['bin', body, 'x'], id: 1 });
  const [p] = decodeAll(parts.map((x) => (typeof x === 'string' ? x : new Uint8Array(x).slice().buffer)));
  assert.deepEqual(Array.from(new Uint8Array(p.data[1])), [0, 255, 10, 13]);
  assert.equal(p.data[2], 'x');
});

test('Decoder rejects out-of-order or bad attachments', () => {
  assert.throws(() => decodeAll([new ArrayBuffer(1)]), /without a binary packet/);
  assert.throws(() => decodeAll(['51-["a",{"_placeholder":true,"num":0}]', '2["b"]']), /reconstructing/);
  assert.throws(() => decodeAll(['51-["a",{"_placeholder":true,"num":5}]', new ArrayBuffer(1)]), /placeholder/);
  assert.throws(() => decodeAll(['599-["a"]']), /too many attachments/);
});

test('Blob values are refused with a clear error (reading them is asynchronous)', () => {
  assert.throws(() => encode({ type: PacketType.EVENT, nsp: '/', data: ['f', new Blob(['x'])] }), /Blob\/File values are not supported/);
});
