// The built files: the browser bundle defines the global `tidewire`, the ES module works
// against the real `sio-test-server`, and the declarations name the API.
// Server binary directory: env TIDEWIRE_BIN_DIR (default ../target/debug relative to
// client-js/, or $CARGO_TARGET_DIR/debug). Build: cargo build -p tidewire-examples.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { WebSocket } from 'ws';
import { CLIENT_ROOT, nextEvent, startServer } from '../testlib/helpers.mjs';

const dist = (name) => path.join(CLIENT_ROOT, 'dist', name);

test('dist/tidewire.js is one self-contained script defining the global tidewire', () => {
  const code = readFileSync(dist('tidewire.js'), 'utf8');
  assert.doesNotMatch(code, /\bimport\s*[{*(]|\brequire\(/, 'no module loading in the browser bundle');
  const context = vm.createContext({ URL, TextEncoder, TextDecoder, setTimeout, clearTimeout, queueMicrotask });
  context.globalThis = context;
  vm.runInContext(code, context);
  const tw = context.tidewire;
  assert.equal(typeof tw, 'object');
  assert.equal(typeof tw.io, 'function');
  assert.equal(typeof tw.Manager, 'function');
  assert.equal(typeof tw.Backoff, 'function');
  assert.equal(tw.protocol, 5);
});

test('dist/tidewire.d.ts declares the public API', () => {
  const dts = readFileSync(dist('tidewire.d.ts'), 'utf8');
  for (const name of ['export function io', 'class Socket', 'class Manager', 'emitWithAck', 'timeout(ms: number)', 'TransportEvent', 'transportTimeouts']) {
    assert.ok(dts.includes(name), `missing ${name}`);
  }
});

test('dist/tidewire.mjs connects to sio-test-server', { timeout: 15_000 }, async () => {
  const { io, TransportMemory } = await import(dist('tidewire.mjs'));
  const server = await startServer('sio-test-server');
  try {
    const socket = io(server.url, { WebSocket, forceNew: true, transportMemory: new TransportMemory({ storage: null }) });
    await nextEvent(socket, 'connect', 5000);
    assert.equal(await socket.timeout(3000).emitWithAck('echo', 'from the bundle'), 'from the bundle');
    socket.disconnect();
  } finally {
    await server.stop();
  }
});
