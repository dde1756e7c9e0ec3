// Interop: the client against the official Socket.IO server (the `socket.io` npm package,
// a dev dependency): it has no SSE transport, so the client goes from SSE to polling.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { WebSocket } from 'ws';
import { io } from '../src/index.js';
import { TransportMemory } from '../src/transport-memory.js';
import { bytesOf, nextEvent, waitUntil } from '../testlib/helpers.mjs';

let httpServer;
let ioServer;
let url;

before(async () => {
  httpServer = createServer();
  ioServer = new Server(httpServer, { pingInterval: 500, pingTimeout: 500 });
  ioServer.on('connection', (socket) => {
    socket.emit('welcome', { auth: socket.handshake.auth });
    socket.on('echo', (...args) => {
      const ack = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      ack?.(...args);
    });
  });
  ioServer.of('/admin').use((socket, next) => {
    if (socket.handshake.auth.token === 'secret') next();
    else next(Object.assign(new Error('unauthorized'), { data: { reason: 'bad token' } }));
  });
  ioServer.of('/admin').on('connection', (socket) => socket.on('ping-me', (ack) => ack('pong')));
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${httpServer.address().port}`;
});

after(async () => {
  ioServer.close();
  await new Promise((r) => httpServer.close(r));
});

function client(path, opts) {
  return io(`${url}${path}`, {
    forceNew: true,
    WebSocket,
    transportMemory: new TransportMemory({ storage: null }),
    ...opts,
  });
}

class RefusingWebSocket {
  constructor() {
    setTimeout(() => this.onerror?.({ message: 'blocked' }), 5);
  }
  close() {}
}

test('WebSocket works: first choice; emit/ack with binary', { timeout: 10_000 }, async () => {
  const socket = client('/', { auth: { a: 1 } });
  const [welcome] = await nextEvent(socket, 'welcome', 5000);
  assert.deepEqual(welcome, { auth: { a: 1 } });
  assert.equal(socket.io.transport, 'websocket');
  const [s, b] = await new Promise((r) => socket.emit('echo', 's', new Uint8Array([5, 6]), (...a) => r(a)));
  assert.equal(s, 's');
  assert.deepEqual(bytesOf(b), [5, 6]);
  socket.disconnect();
});

test('no WebSocket: SSE is refused ("Transport unknown"), polling works', { timeout: 15_000 }, async () => {
  const socket = client('/', { WebSocket: RefusingWebSocket });
  const events = [];
  socket.io.on('transport', (ev) => events.push(ev));
  await nextEvent(socket, 'connect', 8000);
  assert.equal(socket.io.transport, 'polling');
  assert.equal(events[0].name, 'polling');
  assert.equal(events[0].reason, 'sse failed: HTTP 400: Transport unknown');
  assert.equal(await socket.timeout(3000).emitWithAck('echo', 'over polling'), 'over polling');
  socket.disconnect();
});

test('SSE first: falls back to polling, then upgrades to WebSocket', { timeout: 15_000 }, async () => {
  const socket = client('/', { transports: ['sse', 'polling', 'websocket'] });
  const events = [];
  socket.io.on('transport', (ev) => events.push([ev.name, ev.reason]));
  await nextEvent(socket, 'connect', 8000);
  await waitUntil(() => socket.io.transport === 'websocket', 5000, () => `on ${socket.io.transport}`);
  assert.deepEqual(events, [
    ['polling', 'sse failed: HTTP 400: Transport unknown'],
    ['websocket', 'upgraded'],
  ]);
  assert.equal(await socket.timeout(3000).emitWithAck('echo', 'after upgrade'), 'after upgrade');
  socket.disconnect();
});

test('namespace with auth middleware: connect_error carries message and data', { timeout: 10_000 }, async () => {
  const bad = client('/admin', { auth: { token: 'no' } });
  const [err] = await nextEvent(bad, 'connect_error', 5000);
  assert.equal(err.message, 'unauthorized');
  assert.deepEqual(err.data, { reason: 'bad token' });
  const good = client('/admin', { auth: { token: 'secret' } });
  await nextEvent(good, 'connect', 5000);
  assert.equal(await good.emitWithAck('ping-me'), 'pong');
  good.disconnect();
});
