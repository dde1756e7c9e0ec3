// Integration: the engine socket against the real `engine-echo` server over each transport.
// Server binary directory: env TIDEWIRE_BIN_DIR (default ../target/debug relative to
// client-js/, or $CARGO_TARGET_DIR/debug). Build: cargo build -p tidewire-examples.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { EngineSocket } from '../src/engine.js';
import { TransportMemory } from '../src/transport-memory.js';
import { bytesOf, nextEvent, serverHasSse, startServer, waitUntil } from '../testlib/helpers.mjs';

let server;
let hasSse = false;

before(async () => {
  server = await startServer('engine-echo', { PING_INTERVAL_MS: '300', PING_TIMEOUT_MS: '300' });
  hasSse = await serverHasSse(server.url);
  if (!hasSse) console.log('# engine-echo has no SSE transport yet: testing the fallback to polling instead');
});

after(async () => {
  await server?.stop();
});

function engine(opts = {}) {
  return new EngineSocket(server.url, {
    WebSocket,
    transportMemory: new TransportMemory({ storage: null }),
    upgradeProbeDelay: 60_000,
    ...opts,
  });
}

const MESSAGES = [
  'hello',
  '',
  'multi\nline\n',
  'carriage\rreturn\r\n',
  'unicode é € 😀 \u2028',
  new Uint8Array([0, 1, 2, 254, 255]),
  'x'.repeat(20_000),
  new Uint8Array(0),
];

async function echoRoundTrip(e) {
  const got = [];
  e.on('message', (m) => got.push(m));
  for (const m of MESSAGES) e.send(m);
  await waitUntil(() => got.length >= MESSAGES.length, 5000, () => `${got.length}/${MESSAGES.length} echoes`);
  assert.equal(got.length, MESSAGES.length);
  MESSAGES.forEach((m, i) => {
    if (typeof m === 'string') assert.equal(got[i], m, `message #${i}`);
    else {
      assert.ok(got[i] instanceof ArrayBuffer, `message #${i} is binary`);
      assert.deepEqual(bytesOf(got[i]), Array.from(m), `message #${i}`);
    }
  });
}

for (const name of ['websocket', 'polling', 'sse']) {
  test(`${name}: handshake, echo of text and binary, heartbeat`, { timeout: 15_000 }, async (t) => {
    const e = engine({ transports: [name], upgrade: false });
    const transportEvent = nextEvent(e, 'transport', 5000);
    const closed = [];
    e.on('close', (...a) => closed.push(a));
    const opened = nextEvent(e, 'open', 5000);
    e.open();
    if (name === 'sse' && !hasSse) {
      const [reason, err] = await nextEvent(e, 'close', 5000);
      assert.equal(reason, 'transport error');
      assert.match(err.message, /sse failed: HTTP 400: Transport unknown/);
      t.diagnostic('SSE not served by this engine-echo build: checked the clear failure only');
      return;
    }
    const [hs] = await opened;
    assert.equal(typeof hs.sid, 'string');
    assert.equal(hs.pingInterval, 300);
    const [ev] = await transportEvent;
    assert.deepEqual([ev.name, ev.reason], [name, 'first choice']);
    assert.equal(e.transportName, name);
    await echoRoundTrip(e);
    // several ping intervals: the heartbeat keeps the session up
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(e.readyState, 'open');
    assert.deepEqual(closed, []);
    if (name === 'sse') assert.ok(Number(e.lastEventId) > 5, `last event id ${e.lastEventId}`);
    e.close();
    assert.equal(e.readyState, 'closed');
  });
}

test('default order against engine-echo: WebSocket first', { timeout: 10_000 }, async () => {
  const e = engine();
  const [ev] = await (e.open(), nextEvent(e, 'transport', 5000));
  assert.deepEqual([ev.name, ev.reason], ['websocket', 'first choice']);
  e.close();
});

test('WebSocket refused: falls back to SSE (or polling where SSE is not served)', { timeout: 15_000 }, async () => {
  class RefusingWebSocket {
    constructor() {
      setTimeout(() => this.onerror?.({ message: 'proxy says no' }), 5);
    }
    close() {}
  }
  const memory = new TransportMemory({ storage: null });
  const e = engine({ WebSocket: RefusingWebSocket, transportMemory: memory });
  const [ev] = await (e.open(), nextEvent(e, 'transport', 8000));
  const expected = hasSse ? 'sse' : 'polling';
  assert.equal(ev.name, expected);
  assert.equal(ev.failures[0].reason, 'websocket failed: websocket error: proxy says no');
  if (!hasSse) assert.match(ev.reason, /sse failed: HTTP 400: Transport unknown/);
  assert.equal(memory.fallback(e.endpoint), expected);
  await echoRoundTrip(e);
  e.close();
});

test('WebSocket hangs (no error): times out, falls back, remembers', { timeout: 15_000 }, async () => {
  class HangingWebSocket {
    close() {}
  }
  const memory = new TransportMemory({ storage: null });
  const e = engine({ WebSocket: HangingWebSocket, transportMemory: memory, transportTimeouts: { websocket: 300 } });
  const started = Date.now();
  const [ev] = await (e.open(), nextEvent(e, 'transport', 8000));
  assert.ok(Date.now() - started >= 300);
  assert.equal(ev.failures[0].reason, 'websocket timed out');
  e.close();
  const again = engine({ WebSocket: HangingWebSocket, transportMemory: memory });
  const [ev2] = await (again.open(), nextEvent(again, 'transport', 8000));
  assert.equal(ev2.reason, 'remembered fallback');
  again.close();
});

for (const from of ['polling', 'sse']) {
  test(`${from} session upgrades to WebSocket (2probe/3probe/5) without losing messages`, { timeout: 15_000 }, async (t) => {
    if (from === 'sse' && !hasSse) {
      t.diagnostic('SSE not served by this engine-echo build yet');
      return;
    }
    const e = engine({ transports: [from, 'websocket'] });
    const events = [];
    e.on('transport', (ev) => events.push(ev));
    const got = [];
    e.on('message', (m) => got.push(m));
    e.open();
    await nextEvent(e, 'open', 5000);
    // keep traffic flowing across the switch
    let sent = 0;
    const pump = setInterval(() => e.send(`m${sent++}`), 5);
    await waitUntil(() => e.transportName === 'websocket', 5000, () => `still on ${e.transportName}`);
    await new Promise((r) => setTimeout(r, 100));
    clearInterval(pump);
    await waitUntil(() => got.length === sent, 5000, () => `${got.length}/${sent} echoes`);
    assert.deepEqual(got, Array.from({ length: sent }, (_, i) => `m${i}`));
    assert.deepEqual(events.map((ev) => [ev.name, ev.reason]), [
      [from, 'first choice'],
      ['websocket', 'upgraded'],
    ]);
    e.close();
  });
}

test('server shutdown closes the session with a reason', { timeout: 20_000 }, async () => {
  const own = await startServer('engine-echo');
  try {
    for (const name of ['websocket', 'polling']) {
      const e = new EngineSocket(own.url, { WebSocket, transports: [name], transportMemory: new TransportMemory({ storage: null }) });
      await (e.open(), nextEvent(e, 'open', 5000));
      const closed = nextEvent(e, 'close', 8000);
      if (name === 'polling') {
        await new Promise((r) => setTimeout(r, 200)); // let the next GET be in flight
        await own.stop();
      } else {
        // keep the server for the next transport: close from our side instead
        e.close();
      }
      const [reason] = await closed;
      assert.equal(reason, name === 'polling' ? 'transport close' : 'forced close');
    }
  } finally {
    await own.stop();
  }
});
