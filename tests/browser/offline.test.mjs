// Browser end-to-end test of connection state recovery (issue #7): a page that
// goes offline for 10 s in the middle of a counter stream and comes back shows
// no gap: every number 1..COUNT exactly once, in order, after a reconnection
// the server reports as recovered (`socket.recovered === true`).
//
// The outage is Chromium's offline emulation (`context.setOffline(true)`) of the
// page's own browser; the stream is started by a second socket (this Node
// process, long-polling) that is not affected by it. The test also proves the
// outage was real: the page noticed (a `disconnect`), and numbers stopped
// arriving while it was offline.
//
// One run per transport (the page's socket restricted to it, no upgrade). What
// Chromium 156's offline emulation was observed to do (short heartbeats: ping
// interval 1 s, timeout 1 s), and what each run asserts rather than assumes:
//   - websocket: the open WebSocket goes silent (no close event reaches the
//     client first): no frame reaches the page from the moment it is offline,
//     so the client notices by heartbeat (`ping timeout` ~1.1 s later); every new
//     WebSocket handshake fails ("websocket error") until it is back online.
//   - sse: the open event-stream response is failed ("transport error" within
//     ~0.2 s; the 1-3 numbers already in flight still arrive in the first
//     ~150 ms); new requests fail with "Failed to fetch".
//   - polling: the same ("transport error" within ~0.35 s, "Failed to fetch").
// In all three: nothing arrives after the first 1.5 s offline; the reconnection
// ~0.6-0.8 s after coming back online is recovered, and the missed numbers come
// as one replay burst.
//
// Run by hand (from the repo root):
//   cargo build -p tidewire-examples --bin sio-test-server
//   (cd tests/browser && npm ci)
//   node --test tests/browser/offline.test.mjs
// Screenshot: <CARGO_TARGET_DIR or target>/screenshots/offline-<transport>.png
// (and offline.png for the first scenario).

import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../lib/server.mjs';
import { launchBrowser, REPO_ROOT, screenshot, SCREENSHOTS, sleep, TARGET_DIR } from './helpers.mjs';

const SERVER_BIN = process.env.SIO_TEST_SERVER_BIN || path.join(TARGET_DIR, 'debug', 'sio-test-server');
const COUNT = 400;
const RATE = 20; // per second: the stream lasts 20 s
const OFFLINE_MS = 10_000;
const HOOK = { timeout: 60_000 };
const TEST = { timeout: 120_000 };

/** The producer: a Node socket (long-polling over fetch; Node 20 has no WebSocket) that starts the stream. */
async function startStream(url) {
  const { io } = await import(path.join(REPO_ROOT, 'client-js', 'dist', 'tidewire.mjs'));
  const producer = io(url, { transports: ['polling'], forceNew: true });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('producer did not connect')), 10_000);
    producer.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const done = producer.timeout(COUNT / RATE * 1000 + 30_000).emitWithAck('stream', { room: 'r', count: COUNT, rate: RATE, directEvery: 0 });
  return { producer, done };
}

/** In the page: a socket on `transports`, recording every `n`, connect, disconnect and transport. */
async function openReceiver(page, url, transports) {
  // Same origin as the server: the bundle's own URL is the page, then it is loaded as a script.
  await page.goto(`${url}/socket.io/tidewire.js`, { waitUntil: 'load' });
  await page.addScriptTag({ url: '/socket.io/tidewire.js' });
  await page.evaluate(
    ({ url, transports }) => {
      const log = (window.log = { got: [], offsets: [], connects: [], disconnects: [], transports: [], errors: [] });
      const socket = (window.socket = tidewire.io(url, {
        transports,
        upgrade: false,
        reconnectionDelay: 200,
        reconnectionDelayMax: 1000,
        randomizationFactor: 0,
      }));
      socket.on('n', (n, offset) => {
        log.got.push([n, Date.now()]);
        log.offsets.push(offset);
      });
      socket.on('connect', () => {
        log.connects.push({ at: Date.now(), recovered: socket.recovered, id: socket.id });
        // (Re)join on a fresh session; a recovered one is still in the room.
        if (!socket.recovered) socket.emit('join', 'r', () => log.joined = Date.now());
      });
      socket.on('disconnect', (reason) => log.disconnects.push({ at: Date.now(), reason }));
      socket.on('connect_error', (err) => log.errors.push({ at: Date.now(), message: String(err?.message ?? err) }));
      socket.io.on('transport', (ev) => log.transports.push({ at: Date.now(), name: ev.name, reason: ev.reason }));
    },
    { url, transports },
  );
  await page.waitForFunction(() => window.log.joined, null, { timeout: 15_000 });
}

const snapshot = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.log)));

/** Renders the outcome into the page body so the screenshot means something. */
async function render(page, transport, verdict) {
  await page.evaluate(
    ({ transport, verdict }) => {
      const { got, connects, disconnects } = window.log;
      document.documentElement.innerHTML = `<head><style>
        body { font: 18px sans-serif; margin: 40px; }
        .ok { color: #070; } .bad { color: #b00; }
        .big { font-size: 64px; font-weight: bold; }
        ol { color: #444; font-size: 14px; }
      </style></head><body>
        <h1>tidewire: connection state recovery (${transport})</h1>
        <p class="big">${got.length} / ${verdict.count}</p>
        <p>numbers received; last = ${got.length ? got[got.length - 1][0] : '-'}</p>
        <p class="${verdict.ok ? 'ok' : 'bad'} big">${verdict.ok ? 'no gap' : 'GAP'}</p>
        <p>offline for ${verdict.offlineMs} ms; received while offline (after the first 1.5 s): ${verdict.whileOffline}</p>
        <ol>${[
          ...disconnects.map((d) => [d.at, `disconnect: ${d.reason}`]),
          ...connects.map((c) => [c.at, `connect: recovered=${c.recovered}`]),
        ]
          .sort((a, b) => a[0] - b[0])
          .map(([, text]) => `<li>${text}</li>`)
          .join('')}</ol>
      </body>`;
    },
    { transport, verdict },
  );
}

/**
 * One run: stream COUNT numbers to room r; after ~3 s the page goes offline for
 * 10 s; then waits for the end of the stream. Returns what was observed.
 */
async function offlineRun(s, transports) {
  const page = await s.context.newPage();
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
  await openReceiver(page, s.server.url, transports);
  const stream = await startStream(s.server.url);
  s.producers.push(stream.producer);

  await page.waitForFunction(() => window.log.got.length >= 60, null, { timeout: 15_000 });
  await s.context.setOffline(true);
  const offAt = Date.now();
  await sleep(OFFLINE_MS);
  const beforeOnline = await snapshot(page);
  await s.context.setOffline(false);
  const onAt = Date.now();

  const ack = await stream.done;
  // Drain: the recovery replay or the last packets may still be on their way.
  await page
    .waitForFunction((count) => window.log.got.length >= count, COUNT, { timeout: 20_000 })
    .catch(() => {});
  await sleep(500);
  const log = await snapshot(page);
  return { page, ack, offAt, onAt, beforeOnline, log };
}

function summary(r) {
  const { log, offAt, onAt } = r;
  const at = (t) => `${t - offAt} ms`;
  const during = log.got.filter(([, t]) => t > offAt && t <= onAt);
  const afterwards = log.got.filter(([, t]) => t > onAt);
  return JSON.stringify({
    received: log.got.length,
    lastBeforeOffline: log.got.filter(([, t]) => t <= offAt).at(-1)?.[0],
    whileOffline: during.length ? `${during.length} (n ${during[0][0]}..${during.at(-1)[0]}, last @${at(during.at(-1)[1])})` : 0,
    afterOnline: afterwards.length ? `${afterwards.length} (n ${afterwards[0][0]}.. from @${at(afterwards[0][1])})` : 0,
    first: log.got[0]?.[0],
    last: log.got.at(-1)?.[0],
    offlineWindow: `0 .. ${onAt - offAt} ms`,
    disconnects: log.disconnects.map((d) => `${d.reason} @${at(d.at)}`),
    connects: log.connects.map((c) => `recovered=${c.recovered} @${at(c.at)}`),
    transports: log.transports.map((t) => `${t.name} (${t.reason}) @${at(t.at)}`),
    errors: log.errors.map((e) => `${e.message} @${at(e.at)}`).slice(0, 5),
    problems: r.page.problems,
  });
}

/** Numbers the page received between two instants (page and Node share the clock). */
const receivedBetween = (log, from, to) => log.got.filter(([, t]) => t > from && t <= to).map(([n]) => n);

for (const transport of ['sse', 'polling', 'websocket']) {
  describe(`offline for 10 s over ${transport}`, () => {
    const s = { server: null, context: null, producers: [] };
    before(async () => {
      s.server = await startServer(
        SERVER_BIN,
        { RECOVERY_WINDOW_MS: '60000', PING_INTERVAL_MS: '1000', PING_TIMEOUT_MS: '1000' },
        { logsEnv: 'E2E_SERVER_LOGS', hint: 'build it with `cargo build -p tidewire-examples --bin sio-test-server`' },
      );
      s.context = await launchBrowser();
    }, HOOK);
    after(async () => {
      for (const p of s.producers) p.disconnect();
      await s.context?.close();
      await s.server?.stop();
    }, HOOK);

    test(`a page offline for 10 s and back shows no gap in the counter stream (${transport})`, async () => {
      const r = await offlineRun(s, [transport]);
      const { log, offAt, onAt, beforeOnline } = r;
      const info = summary(r);
      console.log(`[${transport}] ${info}`);
      const numbers = log.got.map(([n]) => n);
      const expected = Array.from({ length: COUNT }, (_, i) => i + 1);
      const ok = numbers.length === COUNT && numbers.every((n, i) => n === i + 1);
      // Grace for what was already in flight when the emulation started.
      const whileOffline = receivedBetween(log, offAt + 1_500, onAt);
      await render(r.page, transport, { ok, count: COUNT, offlineMs: onAt - offAt, whileOffline: whileOffline.length });
      const shot = await screenshot(r.page, `offline-${transport}`);
      // offline.png: the default transport's run.
      if (transport === 'websocket') await copyFile(shot, path.join(SCREENSHOTS, 'offline.png'));

      assert.deepEqual(r.ack, { sent: COUNT }, 'the stream did not finish');
      // The outage was real: the page lost its connection and nothing arrived while offline.
      assert.ok(beforeOnline.disconnects.length >= 1, `no disconnect while offline: ${info}`);
      assert.deepEqual(whileOffline, [], `numbers arrived while the page was offline: ${info}`);
      // ... and what was emitted meanwhile (RATE per second) came as one burst after it came back
      // (the recovery replay: live, 1.5 s would bring only 1.5 × RATE numbers).
      const afterOnline = log.got.filter(([, t]) => t > onAt);
      assert.ok(afterOnline.length > 0, `nothing after coming back: ${info}`);
      const burst = afterOnline.filter(([, t]) => t <= afterOnline[0][1] + 1_500).length;
      assert.ok(burst >= (OFFLINE_MS / 1000) * RATE * 0.75, `no replay burst after coming back (${burst} in 1.5 s): ${info}`);
      // It reconnected after coming back, and the server recovered the session.
      const reconnects = log.connects.slice(1);
      assert.ok(reconnects.length >= 1, `no reconnection: ${info}`);
      assert.ok(reconnects.every((c) => c.recovered === true), `a reconnection was not recovered: ${info}`);
      assert.equal(new Set(log.connects.map((c) => c.id)).size, 1, `the socket id changed: ${info}`);
      // The server agrees: this socket is a recovered one, and of the server's connects on `/`
      // (the page's first, the producer's, the page's reconnection) exactly one was recovered.
      const server = await r.page.evaluate(async () => ({
        recovered: await window.socket.timeout(5_000).emitWithAck('recovered'),
        stats: await window.socket.timeout(5_000).emitWithAck('recovery-stats'),
      }));
      assert.equal(server.recovered, true, `server: ${JSON.stringify(server)}`);
      assert.deepEqual(server.stats, { connects: 3, recovered: 1 }, `server: ${JSON.stringify(server)}`);
      // Every `n` carried its offset (recorded events), and there is no gap, no duplicate, in order.
      assert.ok(log.offsets.every((o) => typeof o === 'string' && o.length > 0), 'an `n` without its offset');
      assert.deepEqual(numbers, expected, `gap, duplicate or disorder: ${info}`);
    }, TEST);
  });
}
