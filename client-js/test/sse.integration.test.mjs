// Integration: tidewire's SSE transport against the real `engine-echo` server: streams
// cut by a "proxy" are resumed with Last-Event-ID, nothing lost or doubled; upstream
// POSTs carry ack=<last id>.
// Server binary directory: env TIDEWIRE_BIN_DIR (default ../target/debug relative to
// client-js/, or $CARGO_TARGET_DIR/debug). Build: cargo build -p tidewire-examples.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineSocket } from '../src/engine.js';
import { TransportMemory } from '../src/transport-memory.js';
import { nextEvent, serverHasSse, startServer, waitUntil } from '../testlib/helpers.mjs';

let server;

before(async () => {
  server = await startServer('engine-echo', { PING_INTERVAL_MS: '400', PING_TIMEOUT_MS: '400' });
  if (!(await serverHasSse(server.url))) {
    throw new Error('engine-echo does not serve transport=sse (answers "Transport unknown"): rebuild it from a tree with SSE support');
  }
});

after(async () => {
  await server?.stop();
});

/**
 * A fetch that records requests and cuts every SSE response body after `budget` bytes,
 * like a proxy dropping long responses (possibly in the middle of an event).
 */
function cuttingFetch(budget) {
  const log = [];
  const wrapped = async (url, init = {}) => {
    const u = new URL(url);
    const headers = new Headers(init.headers);
    log.push({ method: init.method ?? 'GET', params: Object.fromEntries(u.searchParams), lastEventId: headers.get('last-event-id') });
    const res = await fetch(url, init);
    if (u.searchParams.get('transport') !== 'sse' || (init.method ?? 'GET') !== 'GET' || !res.body) return res;
    const reader = res.body.getReader();
    let left = budget;
    const body = new ReadableStream({
      async pull(controller) {
        if (left <= 0) {
          reader.cancel().catch(() => {});
          controller.close();
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        const part = value.subarray(0, left);
        left -= part.length;
        controller.enqueue(part);
      },
      cancel() {
        reader.cancel().catch(() => {});
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return { fetch: wrapped, log };
}

test('dropped SSE streams resume with Last-Event-ID: nothing lost, nothing doubled', { timeout: 20_000 }, async () => {
  const { fetch, log } = cuttingFetch(700);
  const e = new EngineSocket(server.url, {
    transports: ['sse'],
    fetch,
    upgrade: false,
    transportMemory: new TransportMemory({ storage: null }),
  });
  const closed = [];
  e.on('close', (...a) => closed.push(a));
  await (e.open(), nextEvent(e, 'open', 5000));
  const got = [];
  e.on('message', (m) => got.push(m));
  const sent = [];
  for (let i = 0; i < 60; i++) {
    const m = i % 7 === 3 ? `msg ${i} with\r\ncr and lf` : `msg ${i} ${'·'.repeat(i % 13)}`;
    sent.push(m);
    e.send(m);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 20));
  }
  await waitUntil(() => got.length >= sent.length, 10_000, () => `${got.length}/${sent.length} echoes`);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(got, sent);
  assert.deepEqual(closed, []);
  const resumes = log.filter((r) => r.method === 'GET' && r.lastEventId);
  assert.ok(resumes.length >= 2, `expected several resumed streams, saw ${resumes.length}`);
  const ids = resumes.map((r) => Number(r.lastEventId));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'Last-Event-ID only grows');
  const posts = log.filter((r) => r.method === 'POST');
  assert.ok(posts.length > 0 && posts.every((p) => p.params.sid === e.id));
  assert.ok(posts.some((p) => Number(p.params.ack) > 1), 'POSTs carry ack=<last id>');
  e.close();
});

test('the SSE session survives several heartbeats (pongs go upstream with ack=)', { timeout: 15_000 }, async () => {
  const { fetch, log } = cuttingFetch(Infinity);
  const e = new EngineSocket(server.url, {
    transports: ['sse'],
    fetch,
    upgrade: false,
    transportMemory: new TransportMemory({ storage: null }),
  });
  await (e.open(), nextEvent(e, 'open', 5000));
  let pings = 0;
  e.on('ping', () => pings++);
  await waitUntil(() => pings >= 3, 5000, () => `${pings} pings`);
  assert.equal(e.readyState, 'open');
  const posts = log.filter((r) => r.method === 'POST');
  assert.ok(posts.length >= 3);
  assert.ok(posts.every((p) => /^\d+$/.test(p.params.ack)), 'every POST says what it received');
  e.close();
});

test('a buffering proxy (SSE delivers nothing until the response ends): falls back to polling', { timeout: 20_000 }, async () => {
  // Holds back the body of every SSE response, as a proxy that buffers whole responses would.
  const bufferingFetch = async (url, init = {}) => {
    const res = await fetch(url, init);
    if (new URL(url).searchParams.get('transport') !== 'sse' || !res.body) return res;
    const held = new ReadableStream({
      start(controller) {
        init.signal?.addEventListener('abort', () => controller.error(new Error('aborted')));
      },
    });
    return new Response(held, { status: res.status, headers: res.headers });
  };
  class HangingWebSocket {
    close() {}
  }
  const memory = new TransportMemory({ storage: null });
  const e = new EngineSocket(server.url, {
    WebSocket: HangingWebSocket,
    fetch: bufferingFetch,
    transportTimeouts: { websocket: 300, sse: 500 },
    transportMemory: memory,
  });
  const started = Date.now();
  const [ev] = await (e.open(), nextEvent(e, 'transport', 8000));
  assert.ok(Date.now() - started >= 800);
  assert.equal(ev.name, 'polling');
  assert.equal(ev.reason, 'sse timed out (buffering proxy?)');
  assert.deepEqual(ev.failures.map((f) => f.reason), ['websocket timed out', 'sse timed out (buffering proxy?)']);
  assert.equal(memory.fallback(e.endpoint), 'polling');
  const got = nextEvent(e, 'message', 3000);
  e.send('via polling');
  assert.deepEqual(await got, ['via polling']);
  e.close();
});
