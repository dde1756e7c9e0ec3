// Unit tests of the Manager and Socket over fake transports (no server process).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Manager } from '../src/manager.js';
import { TransportMemory } from '../src/transport-memory.js';
import { fakeTransports, HANDSHAKE } from '../testlib/fake-transports.mjs';

const until = async (cond, ms = 1000, what = 'condition') => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
};

/**
 * A fake Socket.IO server behind a fake WebSocket transport. `onMessage(text, t)` sees each
 * text message the client sends; the default answers CONNECT with a sid.
 */
function fakeServer({ connectReply = (nsp) => `0${nsp === '/' ? '' : nsp + ','}{"sid":"sid${nsp}"}`, onMessage } = {}) {
  const received = [];
  const fakes = fakeTransports({
    websocket: (t) => {
      setTimeout(() => {
        t.writable = true;
        t.emitEvent('open');
        t.serverSend({ type: 'open', data: JSON.stringify(HANDSHAKE) });
      }, 1);
      t.on('sent', (packets) => {
        for (const p of packets) {
          if (p.type !== 'message') continue;
          received.push(p.data);
          if (typeof p.data === 'string' && p.data[0] === '0') {
            const nsp = p.data[1] === '/' ? p.data.slice(1, p.data.indexOf(',')) : '/';
            setTimeout(() => t.serverSend({ type: 'message', data: connectReply(nsp) }), 1);
          }
          onMessage?.(p.data, t);
        }
      });
    },
  });
  return { fakes, received };
}

function manager(fakes, opts = {}) {
  return new Manager('http://example.test', {
    transportFactories: fakes.factories,
    transports: ['websocket'],
    transportMemory: new TransportMemory({ storage: null }),
    reconnectionDelay: 10,
    reconnectionDelayMax: 40,
    randomizationFactor: 0,
    ...opts,
  });
}

test('reconnection: exponential delays, then reconnect_failed after reconnectionAttempts', async () => {
  const fakes = fakeTransports({ websocket: 'fail' });
  const m = manager(fakes, { reconnectionAttempts: 3, autoConnect: false });
  const delays = [];
  const errors = [];
  m.on('reconnect_scheduled', ({ delay }) => delays.push(delay));
  m.on('reconnect_error', (e) => errors.push(e.message));
  const socket = m.socket('/');
  const connectErrors = [];
  socket.on('connect_error', (e) => connectErrors.push(e.message));
  const failed = new Promise((r) => m.once('reconnect_failed', r));
  socket.connect();
  await failed;
  assert.deepEqual(delays, [10, 20, 40]);
  assert.equal(errors.length, 3);
  assert.equal(connectErrors.length, 4, 'the first attempt and each reconnection');
  assert.match(connectErrors[0], /no transport could connect: websocket failed: websocket refused/);
  socket.disconnect();
});

test('connect, offline buffer, emit with ack, ack timeout message', async () => {
  const { fakes, received } = fakeServer({
    onMessage: (data, t) => {
      // ack "echo" events (id after the type digit)
      const m = /^2(\d+)\["echo",(.*)\]$/.exec(data);
      if (m) setTimeout(() => t.serverSend({ type: 'message', data: `3${m[1]}[${m[2]}]` }), 1);
    },
  });
  const m = manager(fakes, { autoConnect: false });
  const socket = m.socket('/', { auth: { token: 't' } });
  socket.emit('hello', 1); // offline: buffered
  assert.equal(socket.sendBuffer.length, 1);
  socket.connect();
  await until(() => socket.connected);
  assert.equal(socket.id, 'sid/');
  assert.equal(m.transport, 'websocket');
  await until(() => received.includes('2["hello",1]'));
  assert.deepEqual(received.slice(0, 2), ['0{"token":"t"}', '2["hello",1]']);
  assert.equal(await socket.emitWithAck('echo', 'x'), 'x');
  const viaCallback = await new Promise((r) => socket.emit('echo', { a: 1 }, r));
  assert.deepEqual(viaCallback, { a: 1 });
  await assert.rejects(socket.timeout(30).emitWithAck('ignored'), { message: 'ack timed out after 30 ms' });
  const errFirst = await new Promise((r) => socket.timeout(50).emit('echo', 'y', (...a) => r(a)));
  assert.deepEqual(errFirst, [null, 'y']);
  assert.throws(() => socket.emit('connect'), /reserved/);
  socket.disconnect();
  await until(() => received.includes('1'), 1000, 'DISCONNECT sent');
});

test('server events, acks to the server, binary events', async () => {
  let transport;
  const { fakes, received } = fakeServer({ onMessage: (_d, t) => (transport = t) });
  const m = manager(fakes);
  const socket = m.socket('/');
  await until(() => socket.connected);
  const got = [];
  socket.on('news', (...args) => got.push(args));
  socket.on('question', (n, ack) => ack(n + 1));
  transport.serverSend({ type: 'message', data: '2["news","a",{"b":1}]' });
  transport.serverSend({ type: 'message', data: '27["question",41]' });
  transport.serverSend({ type: 'message', data: '51-["news",{"_placeholder":true,"num":0}]' });
  transport.serverSend({ type: 'message', data: new Uint8Array([9, 8]).buffer });
  await until(() => got.length === 2 && received.includes('37[42]'));
  assert.deepEqual(got[0], ['a', { b: 1 }]);
  assert.deepEqual(Array.from(new Uint8Array(got[1][0])), [9, 8]);
  // binary upstream: placeholder text then the attachment
  socket.emit('up', new Uint8Array([1, 2]));
  await until(() => received.some((r) => r instanceof Uint8Array));
  const i = received.indexOf('51-["up",{"_placeholder":true,"num":0}]');
  assert.ok(i >= 0);
  assert.deepEqual(Array.from(received[i + 1]), [1, 2]);
  socket.disconnect();
});

test('CONNECT_ERROR gives connect_error with message and data', async () => {
  const { fakes } = fakeServer({ connectReply: () => '4{"message":"unauthorized","data":{"reason":"bad token"}}' });
  const m = manager(fakes);
  const socket = m.socket('/');
  const err = await new Promise((r) => socket.once('connect_error', r));
  assert.equal(err.message, 'unauthorized');
  assert.deepEqual(err.data, { reason: 'bad token' });
  assert.equal(socket.connected, false);
  assert.equal(socket.active, false);
});

test('a dropped connection: disconnect reason, pending acks fail, reconnect, buffer flushed', async () => {
  let transport;
  const { fakes, received } = fakeServer({ onMessage: (_d, t) => (transport = t) });
  const m = manager(fakes);
  const socket = m.socket('/');
  await until(() => socket.connected && transport);
  const pending = socket.emitWithAck('never-answered');
  const reasons = [];
  socket.on('disconnect', (r) => reasons.push(r));
  transport._onClose('transport close', new Error('gone'));
  await assert.rejects(pending, /socket has been disconnected/);
  assert.deepEqual(reasons, ['transport close']);
  socket.emit('while-offline');
  await until(() => socket.connected, 1000, 'reconnected');
  await until(() => received.includes('2["while-offline"]'));
  assert.equal(fakes.created.length, 2);
  socket.disconnect();
});

test('namespaces multiplex over one engine connection', async () => {
  const { fakes, received } = fakeServer();
  const m = manager(fakes);
  const a = m.socket('/');
  const b = m.socket('/admin', { auth: { token: 's' } });
  await until(() => a.connected && b.connected);
  assert.equal(b.id, 'sid/admin');
  assert.equal(fakes.created.length, 1);
  assert.ok(received.includes('0/admin,{"token":"s"}'));
  b.emit('x');
  await until(() => received.includes('2/admin,["x"]'));
  b.disconnect();
  await until(() => received.includes('1/admin,'), 1000, 'DISCONNECT of /admin sent');
  assert.equal(m.readyState, 'open', 'still used by "/"');
  a.disconnect();
  assert.equal(m.readyState, 'closed');
});

test('recovery offsets: remembered for the resume, duplicates dropped, reset on a fresh session', async () => {
  let transport;
  const { fakes, received } = fakeServer({
    connectReply: () => '0{"sid":"s1","pid":"p1"}',
    onMessage: (_d, t) => (transport = t),
  });
  const m = manager(fakes);
  const socket = m.socket('/');
  await until(() => socket.connected);
  const got = [];
  socket.on('n', (n) => got.push(n));
  for (const [n, offset] of [[1, '@1'], [2, '@2'], [2, '@2'], [1, '@1'], [3, '@3']]) {
    transport.serverSend({ type: 'message', data: `2["n",${n},"${offset}"]` });
  }
  // An ordinary string argument is never taken for an offset.
  transport.serverSend({ type: 'message', data: '2["n",4,"2"]' });
  await until(() => got.length === 4);
  assert.deepEqual(got, [1, 2, 3, 4], 'the replayed @1 and @2 are dropped');
  assert.equal(socket._lastOffset, '2');
  assert.equal(socket._lastSeq, 3);
  assert.ok(received.length >= 1);
  socket.disconnect();
});
