// Integration: an SSE client that only listens confirms what it received often enough
// that a busy room never fills the server's retained-event buffer (4096 events by
// default). With a 25 s ping interval the pong alone would confirm far too rarely:
// 6,000 events in about a second would close the session as a slow consumer.
// Server binary directory: env TIDEWIRE_BIN_DIR (see testlib/helpers.mjs).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { io } from '../src/index.js';
import { TransportMemory } from '../src/transport-memory.js';
import { nextEvent, startServer, waitUntil } from '../testlib/helpers.mjs';

let server;

before(async () => {
  server = await startServer('sio-test-server', { PING_INTERVAL_MS: '25000', PING_TIMEOUT_MS: '20000' });
});

after(async () => {
  await server?.stop();
});

test('a listening SSE client outlasts more events than the server retains', async () => {
  const socket = io(server.url, {
    forceNew: true,
    transports: ['sse'],
    transportMemory: new TransportMemory({ storage: null }),
    reconnection: false,
  });
  try {
    await nextEvent(socket, 'connect', 5000);
    assert.equal(socket.io.engine.transport.name, 'sse');
    let disconnected = null;
    socket.on('disconnect', (reason) => (disconnected = reason));
    let last = 0;
    let count = 0;
    socket.on('n', (n) => {
      count++;
      last = n;
    });
    await socket.emitWithAck('join', 'flood');
    const total = 6000;
    const reply = await socket.timeout(15000).emitWithAck('stream', { room: 'flood', count: total, rate: 5000 });
    assert.equal(reply.sent, total);
    await waitUntil(() => count === total || disconnected !== null, 10000);
    assert.equal(disconnected, null, 'the session stayed open');
    assert.equal(count, total);
    assert.equal(last, total);
  } finally {
    socket.io.disconnect();
  }
});
