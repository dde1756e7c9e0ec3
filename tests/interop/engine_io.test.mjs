// Interop: the official `engine.io-client` (Engine.IO v4) against tidewire's
// `engine-echo` example server, over long-polling, WebSocket, and the
// polling -> WebSocket upgrade, plus the heartbeat.
//
// Run by hand (from the repo root):
//   cargo build -p tidewire-examples          # builds target/debug/engine-echo
//   (cd tests/interop && npm ci)              # once
//   node --test tests/interop/engine_io.test.mjs
// Useful variables:
//   CARGO_TARGET_DIR=...      where the binary was built (default <repo>/target)
//   ENGINE_ECHO_BIN=/path     run the tests against another server that follows the
//                             same contract (PORT/HOST/PING_INTERVAL_MS/PING_TIMEOUT_MS/
//                             MAX_PAYLOAD env, prints `listening on http://HOST:PORT`,
//                             Engine.IO mounted at /socket.io/), e.g. a reference
//                             echo server written on the `engine.io` npm package
//   RUST_LOG=debug INTEROP_SERVER_LOGS=1   show the server's logs
// `bash scripts/test.sh` runs these with everything else.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Socket } from 'engine.io-client';

import { assertSameMessages, debugBinary, sleep, startServer, waitUntil } from './helpers.mjs';

const ENGINE_ECHO = process.env.ENGINE_ECHO_BIN || debugBinary('engine-echo');
// tidewire's default mount point (engine.io-client defaults to /engine.io/).
const ENGINE_PATH = '/socket.io/';
const TEST_TIMEOUT = { timeout: 20_000 };

/** Opens an engine.io-client socket; resolves once it is open. */
async function connect(url, opts = {}) {
  const socket = new Socket(url, { path: ENGINE_PATH, ...opts });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "open" from ${url} within 5000 ms`)), 5_000);
      socket.once('open', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        const detail = err?.description?.message ?? err?.description;
        reject(new Error(`connection to ${url} failed: ${err?.message ?? err}${detail ? ` (${detail})` : ''}`));
      });
      socket.once('close', (reason) => {
        clearTimeout(timer);
        reject(new Error(`connection to ${url} closed before opening: ${reason}`));
      });
    });
  } catch (err) {
    socket.close();
    throw err;
  }
  return socket;
}

/** Records every message the socket receives, and whether/why it closed. */
function record(socket) {
  const state = { messages: [], closed: null, pings: 0 };
  socket.on('message', (data) => state.messages.push(data));
  socket.on('ping', () => state.pings++);
  socket.on('close', (reason, description) => {
    state.closed = `${reason}${description ? ` (${description?.message ?? description})` : ''}`;
  });
  return state;
}

/** Waits for `count` echoes, then a little longer so a duplicate would show up too. */
async function waitForEchoes(state, count, timeoutMs = 10_000) {
  await waitUntil(
    () => state.messages.length >= count || state.closed !== null,
    timeoutMs,
    () => `expected ${count} echoed messages, got ${state.messages.length}`,
  );
  assert.equal(state.closed, null, `socket closed while waiting for echoes: ${state.closed}`);
  await sleep(150);
}

/** 50 messages: text and binary, with edge cases (empty, non-ASCII, large, NUL bytes). */
function mixedMessages() {
  const out = [];
  for (let i = 0; i < 50; i++) {
    switch (i % 5) {
      case 0:
        out.push(`text message ${i}`);
        break;
      case 1: // every byte value shows up across these
        out.push(Uint8Array.from({ length: 64 }, (_, j) => (i * 64 + j) & 0xff));
        break;
      case 2: // 2-, 3- and 4-byte UTF-8 (the last is a surrogate pair in JS)
        out.push(`unicode ${i}: héllo wörld ✓ 日本 🌊`);
        break;
      case 3: // a Node Buffer, not just a Uint8Array
        out.push(Buffer.from([0, i, 0xff, 0x1e, 0x34, 0x62]));
        break;
      default: {
        const edge = [
          '', // empty text
          Buffer.alloc(0), // empty binary
          'b64 lookalike: text starting with b', // `b` marks binary inside a polling payload
          '{"json":[1,2,3]}',
          'x'.repeat(20_000), // large text
          Buffer.alloc(20_000, 0xab), // large binary
          '42',
          '\0 nul and \t tab',
          new Uint8Array([0x34]), // a binary "4"
          'end',
        ];
        out.push(edge[(i - 4) / 5]);
      }
    }
  }
  return out;
}

describe('engine.io-client against engine-echo', () => {
  let server;
  before(async () => {
    server = await startServer(ENGINE_ECHO);
  });
  after(async () => {
    await server?.stop();
  });

  for (const transport of ['polling', 'websocket']) {
    test(`${transport} only: 50 text and binary messages echo back in order`, TEST_TIMEOUT, async () => {
      const socket = await connect(server.url, { transports: [transport], upgrade: false });
      try {
        assert.equal(socket.transport.name, transport, `expected the ${transport} transport`);
        const state = record(socket);
        const messages = mixedMessages();
        // Send in bursts so polling needs several POSTs (some while another is in flight).
        for (let i = 0; i < messages.length; i += 10) {
          for (const m of messages.slice(i, i + 10)) socket.send(m);
          await sleep(5);
        }
        await waitForEchoes(state, messages.length);
        assertSameMessages(state.messages, messages);
        assert.equal(socket.transport.name, transport, 'the transport must not change with upgrade: false');
      } finally {
        socket.close();
      }
    });
  }

  test('default transports: upgrades polling -> websocket without losing, duplicating or reordering 200 messages', TEST_TIMEOUT, async (t) => {
    const TOTAL = 200;
    // The probe starts right after "open" but answers come asynchronously,
    // so listeners attached once connect() resolves miss nothing.
    const socket = await connect(server.url);
    assert.equal(socket.transport.name, 'polling', 'the first transport must be polling');
    const state = record(socket);
    const sent = [];
    let sentAtUpgrading = null;
    let sentAtUpgrade = null;
    const sendNext = (n) => {
      for (let k = 0; k < n && sent.length < TOTAL; k++) {
        const msg = sent.length % 2 === 0 ? `message ${sent.length}` : Buffer.from(`binary ${sent.length}`);
        sent.push(msg);
        socket.send(msg);
      }
    };
    // The client pauses polling between "upgrading" (probe answered) and
    // "upgrade"; whatever is sent in between is buffered and must arrive over
    // the WebSocket after the polled messages.
    socket.on('upgrading', () => {
      sentAtUpgrading = sent.length;
      sendNext(10);
    });
    socket.on('upgrade', () => {
      sentAtUpgrade = sent.length;
      sendNext(10);
    });
    const upgraded = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no "upgrade" event (polling -> websocket) within 10000 ms')), 10_000);
      socket.once('upgrade', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('upgradeError', (err) => {
        clearTimeout(timer);
        reject(new Error(`upgrade to websocket failed: ${err?.message ?? err}`));
      });
    });
    upgraded.catch(() => {}); // awaited below; avoid an unhandled rejection meanwhile
    let ticker;
    try {
      // Start sending right away, about one message per millisecond, so
      // sending overlaps the probe and the upgrade.
      sendNext(2);
      ticker = setInterval(() => {
        sendNext(1);
        if (sent.length >= TOTAL) clearInterval(ticker);
      }, 1);
      await upgraded;
      assert.equal(socket.transport.name, 'websocket', 'after "upgrade" the transport must be websocket');
      await waitUntil(() => sent.length >= TOTAL, 10_000, () => `only ${sent.length} of ${TOTAL} messages were sent`);
      await waitForEchoes(state, TOTAL);
      t.diagnostic(`sent ${sentAtUpgrading} before "upgrading", ${sentAtUpgrade} before "upgrade", of ${TOTAL}`);
      assertSameMessages(state.messages, sent, 'messages echoed across the upgrade');
      assert.ok(
        sentAtUpgrading !== null && sentAtUpgrading < TOTAL,
        `expected the upgrade to start while messages were still being sent (sent ${sentAtUpgrading} of ${TOTAL} at "upgrading")`,
      );
      assert.ok(sentAtUpgrade > 0, 'expected some messages to go over polling before the upgrade');
      assert.equal(socket.transport.name, 'websocket');
    } finally {
      clearInterval(ticker);
      socket.close();
    }
  });
});

describe('heartbeat (PING_INTERVAL_MS=200, PING_TIMEOUT_MS=200)', () => {
  const PING_INTERVAL = 200;
  const PING_TIMEOUT = 200;
  let server;
  before(async () => {
    server = await startServer(ENGINE_ECHO, {
      PING_INTERVAL_MS: String(PING_INTERVAL),
      PING_TIMEOUT_MS: String(PING_TIMEOUT),
    });
  });
  after(async () => {
    await server?.stop();
  });

  const variants = [
    ['polling only', { transports: ['polling'], upgrade: false }],
    ['websocket only', { transports: ['websocket'] }],
    ['default (with upgrade)', {}],
  ];
  for (const [name, opts] of variants) {
    test(`${name}: a client that answers pings stays connected for 1.5 s`, TEST_TIMEOUT, async () => {
      const socket = await connect(server.url, opts);
      try {
        const state = record(socket);
        // The client itself gives up if no ping arrives within
        // pingInterval + pingTimeout, so this also checks the server pings on time.
        await sleep(1_500);
        assert.equal(state.closed, null, `expected the socket to stay open, but it closed: ${state.closed}`);
        assert.ok(state.pings >= 4, `expected about 7 pings in 1.5 s at a 200 ms interval, got ${state.pings}`);
        socket.send('still alive');
        await waitForEchoes(state, 1, 5_000);
        assertSameMessages(state.messages, ['still alive'], 'echo after 1.5 s of heartbeats');
      } finally {
        socket.close();
      }
    });
  }

  test('raw polling: a client that never pongs is dropped after the ping timeout', TEST_TIMEOUT, async () => {
    const base = `${server.url}${ENGINE_PATH}?EIO=4&transport=polling`;
    const handshake = await fetch(base, { signal: AbortSignal.timeout(5_000) });
    assert.equal(handshake.status, 200, 'handshake must answer 200');
    const body = await handshake.text();
    assert.match(body, /^0\{/, `handshake must be an open packet "0{...}", got ${JSON.stringify(body)}`);
    const open = JSON.parse(body.slice(1));
    assert.equal(typeof open.sid, 'string', 'open packet must carry a sid');
    assert.equal(open.pingInterval, PING_INTERVAL, 'pingInterval must come from PING_INTERVAL_MS');
    assert.equal(open.pingTimeout, PING_TIMEOUT, 'pingTimeout must come from PING_TIMEOUT_MS');
    assert.ok(Array.isArray(open.upgrades), 'open packet must list upgrades');
    assert.equal(typeof open.maxPayload, 'number', 'open packet must carry maxPayload');

    const poll = `${base}&sid=${encodeURIComponent(open.sid)}`;
    // A long poll: answered with the server's ping after about pingInterval.
    const started = Date.now();
    const pingRes = await fetch(poll, { signal: AbortSignal.timeout(5_000) });
    assert.equal(pingRes.status, 200, 'poll must answer 200');
    assert.equal(await pingRes.text(), '2', 'expected the poll to return a lone ping packet "2"');
    const waited = Date.now() - started;
    assert.ok(waited >= PING_INTERVAL / 2, `ping came after ${waited} ms; expected about ${PING_INTERVAL} ms`);

    // The session is still alive right after the ping...
    const post = await fetch(poll, {
      method: 'POST',
      body: '4not a pong',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal(post.status, 200, 'a POST before the ping timeout must be accepted');
    await post.text();

    // ...but without a pong it must be gone once pingTimeout has passed.
    await sleep(PING_TIMEOUT + 400);
    const gone = await fetch(poll, { signal: AbortSignal.timeout(5_000) });
    const goneBody = await gone.text();
    assert.equal(gone.status, 400, `expected HTTP 400 for a timed-out session, got ${gone.status}: ${goneBody}`);
    let error;
    try {
      error = JSON.parse(goneBody);
    } catch {
      assert.fail(`expected a JSON error body, got ${JSON.stringify(goneBody)}`);
    }
    assert.equal(error.code, 1, `expected error code 1 (unknown session id), got ${goneBody}`);
  });
});
