import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineSocket } from '../src/engine.js';
import { TransportMemory } from '../src/transport-memory.js';
import { fakeTransports, HANDSHAKE } from '../testlib/fake-transports.mjs';

const SERVER = 'http://example.test';
// Generous enough for a loaded CI machine: the fakes answer within a few ms.
const TIMEOUTS = { websocket: 150, sse: 150, polling: 150 };

/** Opens an engine on fake transports; resolves with { engine, events } once open (or closed). */
function connect(behaviours, { memory = new TransportMemory({ storage: null }), ...opts } = {}) {
  const fakes = fakeTransports(behaviours);
  const engine = new EngineSocket(SERVER, {
    transportFactories: fakes.factories,
    transportTimeouts: TIMEOUTS,
    transportMemory: memory,
    upgradeProbeDelay: 60_000,
    ...opts,
  });
  const events = [];
  engine.on('transport', (ev) => events.push(ev));
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('engine neither opened nor closed in 2 s')), 2000);
    engine.once('open', () => {
      clearTimeout(timer);
      resolve({ engine, events, fakes, memory, outcome: 'open' });
    });
    engine.once('close', (reason, err) => {
      clearTimeout(timer);
      resolve({ engine, events, fakes, memory, outcome: 'close', reason, err });
    });
  });
  engine.open();
  return done;
}

const until = async (cond, ms = 1000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
};

test('WebSocket first when it works', async () => {
  const { engine, events, fakes, memory } = await connect({ websocket: 'open', sse: 'open', polling: 'open' });
  assert.equal(engine.transportName, 'websocket');
  assert.deepEqual(events, [{ name: 'websocket', reason: 'first choice', failures: [] }]);
  assert.deepEqual(fakes.names(), ['websocket']);
  assert.ok(memory.websocketWorked(engine.endpoint));
  engine.close();
});

test('WebSocket hangs: SSE, with the reason', async () => {
  const { engine, events, fakes } = await connect({ websocket: 'hang', sse: 'open', polling: 'open' });
  assert.equal(engine.transportName, 'sse');
  assert.equal(events.length, 1);
  assert.equal(events[0].name, 'sse');
  assert.equal(events[0].reason, 'websocket timed out');
  assert.ok(fakes.created[0].closed, 'the hanging WebSocket was abandoned');
  engine.close();
});

test('WebSocket fails: the error is the reason', async () => {
  const { engine, events } = await connect({ websocket: 'fail', sse: 'open' });
  assert.equal(engine.transportName, 'sse');
  assert.equal(events[0].reason, 'websocket failed: websocket refused');
  engine.close();
});

test('SSE opens but never delivers the open packet (buffering proxy): polling', async () => {
  const { engine, events, fakes } = await connect({ websocket: 'hang', sse: 'silent', polling: 'open' });
  assert.equal(engine.transportName, 'polling');
  assert.equal(events[0].name, 'polling');
  assert.equal(events[0].reason, 'sse timed out (buffering proxy?)');
  assert.deepEqual(
    events[0].failures.map((f) => f.reason),
    ['websocket timed out', 'sse timed out (buffering proxy?)'],
  );
  assert.deepEqual(fakes.names(), ['websocket', 'sse', 'polling']);
  assert.ok(fakes.created[1].closed, 'the silent SSE stream was closed');
  engine.close();
});

test('official Socket.IO server (SSE unknown): polling', async () => {
  const { engine, events } = await connect({ websocket: 'hang', sse: 'fail', polling: 'open' });
  assert.equal(engine.transportName, 'polling');
  assert.equal(events[0].reason, 'sse failed: sse refused');
  engine.close();
});

test('every transport fails: the engine closes with every reason', async () => {
  const r = await connect({ websocket: 'hang', sse: 'silent', polling: 'hang' });
  assert.equal(r.outcome, 'close');
  assert.equal(r.reason, 'transport error');
  assert.match(r.err.message, /websocket timed out; sse timed out \(buffering proxy\?\); polling timed out/);
});

test('the transports option restricts and orders the candidates', async () => {
  const { engine, fakes, events } = await connect({ websocket: 'open', polling: 'open' }, { transports: ['polling'] });
  assert.equal(engine.transportName, 'polling');
  assert.deepEqual(fakes.names(), ['polling']);
  assert.equal(events[0].reason, 'first choice');
  engine.close();
});

test('the fallback is remembered when WebSocket never worked, then used first', async () => {
  const memory = new TransportMemory({ storage: null });
  const first = await connect({ websocket: 'hang', sse: 'open' }, { memory });
  assert.equal(first.engine.transportName, 'sse');
  assert.equal(memory.fallback(first.engine.endpoint), 'sse');
  first.engine.close();

  const second = await connect({ websocket: 'hang', sse: 'open' }, { memory });
  assert.equal(second.engine.transportName, 'sse');
  assert.deepEqual(second.events[0], { name: 'sse', reason: 'remembered fallback', failures: [] });
  assert.deepEqual(second.fakes.names(), ['sse'], 'WebSocket was not tried first');
  second.engine.close();
});

test('no fallback is remembered once WebSocket worked in this session', async () => {
  const memory = new TransportMemory({ storage: null });
  const ok = await connect({ websocket: 'open' }, { memory });
  ok.engine.close();
  // e.g. the server restarted behind a proxy that was slow to accept WebSockets
  const degraded = await connect({ websocket: 'hang', sse: 'open' }, { memory });
  assert.equal(degraded.engine.transportName, 'sse');
  assert.equal(memory.fallback(degraded.engine.endpoint), null);
  degraded.engine.close();
  const again = await connect({ websocket: 'open', sse: 'open' }, { memory });
  assert.deepEqual(again.fakes.names(), ['websocket'], 'WebSocket is tried first again');
  again.engine.close();
});

test('remembered fallback lives in sessionStorage-like storage', async () => {
  const store = new Map();
  const storage = {
    getItem: (k) => store.get(k) ?? null,
    setItem: (k, v) => store.set(k, v),
    removeItem: (k) => store.delete(k),
  };
  const first = await connect({ websocket: 'fail', sse: 'fail', polling: 'open' }, { memory: new TransportMemory({ storage }) });
  first.engine.close();
  assert.equal(store.get(`tidewire:fallback:${first.engine.endpoint}`), 'polling');
  // a new page in the same browser session: new page memory, same storage
  const second = await connect({ websocket: 'fail', polling: 'open' }, { memory: new TransportMemory({ storage }) });
  assert.equal(second.events[0].reason, 'remembered fallback');
  assert.equal(second.engine.transportName, 'polling');
  second.engine.close();
});

test('a remembered fallback is upgraded to WebSocket in the background, which clears it', async () => {
  const memory = new TransportMemory({ storage: null });
  memory.rememberFallback('http://example.test/socket.io/', 'sse');
  const { engine, events, fakes } = await connect({ websocket: 'probe-ok', sse: 'open' }, { memory });
  assert.equal(engine.transportName, 'sse');
  await until(() => engine.transportName === 'websocket');
  assert.deepEqual(events.map((e) => [e.name, e.reason]), [
    ['sse', 'remembered fallback'],
    ['websocket', 'upgraded'],
  ]);
  const probe = fakes.created.find((t) => t.name === 'websocket');
  assert.equal(probe.opts.sid, HANDSHAKE.sid);
  assert.deepEqual(
    probe.sent.map((p) => `${p.type}${p.data ?? ''}`),
    ['pingprobe', 'upgrade'],
  );
  assert.ok(fakes.created[0].closed, 'the SSE transport was closed after the switch');
  assert.equal(memory.fallback(engine.endpoint), null);
  assert.ok(memory.websocketWorked(engine.endpoint));
  engine.close();
});

test('after WebSocket timed out, it is probed again only after upgradeProbeDelay', async () => {
  const { engine, fakes } = await connect({ websocket: 'hang', sse: 'open' }, { upgradeProbeDelay: 300 });
  assert.equal(fakes.created.length, 2);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(fakes.created.length, 2, 'no probe yet');
  await until(() => fakes.created.length === 3, 1000);
  assert.equal(fakes.names()[2], 'websocket(probe)');
  // the probe hangs too: it times out and the session stays on SSE
  await new Promise((r) => setTimeout(r, TIMEOUTS.websocket + 20));
  assert.ok(fakes.created[2].closed);
  assert.equal(engine.transportName, 'sse');
  assert.equal(engine.readyState, 'open');
  engine.close();
});

test('SSE upgrade ordering: stream packets up to the noop come before WebSocket packets', async () => {
  let sse;
  const got = [];
  const fakes = {
    websocket: (t) => {
      setTimeout(() => {
        t.writable = true;
        t.emitEvent('open');
      }, 1);
      t.on('sent', (packets) => {
        for (const p of packets) {
          if (p.type === 'ping') setTimeout(() => t.serverSend({ type: 'pong', data: 'probe' }), 1);
          if (p.type === 'upgrade') {
            // the server switched: the WebSocket delivers at once, the stream still has two events
            t.serverSend({ type: 'message', data: 'ws-1' });
            t.serverSend({ type: 'message', data: 'ws-2' });
            setTimeout(() => {
              sse.serverSend({ type: 'message', data: 'sse-last' });
              sse.serverSend({ type: 'noop' });
              sse.streamEnd();
            }, 20);
          }
        }
      });
    },
    sse: (t) => {
      sse = t;
      let end;
      t.awaitStreamEnd = () => new Promise((r) => (end = r));
      t.streamEnd = () => end?.();
      setTimeout(() => {
        t.writable = true;
        t.serverSend({ type: 'open', data: JSON.stringify(HANDSHAKE) });
        t.serverSend({ type: 'message', data: 'sse-first' });
      }, 1);
    },
  };
  const { engine } = await connect(fakes, { transports: ['sse', 'websocket'], onMessage: null });
  engine.on('message', (m) => got.push(m));
  await until(() => got.length === 3);
  assert.deepEqual(got, ['sse-last', 'ws-1', 'ws-2']);
  assert.equal(engine.transportName, 'websocket');
  engine.close();
});

test('heartbeat: answers ping with pong, closes when no ping comes in time', async () => {
  const hs = { ...HANDSHAKE, pingInterval: 100, pingTimeout: 100 };
  const fakes = fakeTransports({ polling: 'open' }, hs);
  const engine = new EngineSocket(SERVER, {
    transports: ['polling'],
    transportFactories: fakes.factories,
    transportMemory: new TransportMemory({ storage: null }),
  });
  const closed = new Promise((r) => engine.once('close', (reason) => r({ reason, at: Date.now() })));
  await new Promise((r) => engine.once('open', r).open());
  const t = fakes.created[0];
  const start = Date.now();
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 60));
    t.serverSend({ type: 'ping' });
  }
  await until(() => t.sent.filter((p) => p.type === 'pong').length === 4);
  assert.equal(engine.readyState, 'open', 'regular pings keep the session open');
  const { reason, at } = await closed;
  assert.equal(reason, 'ping timeout');
  assert.ok(at - start >= 240 + 190, `closed too early (${at - start} ms)`);
});

test('writes wait for the handshake and respect maxPayload on HTTP transports', async () => {
  const hs = { ...HANDSHAKE, maxPayload: 11 }; // "4aaaa" + 0x1E + "4bbbb"
  const fakes = fakeTransports({ polling: 'open' }, hs);
  const engine = new EngineSocket(SERVER, {
    transports: ['polling'],
    transportFactories: fakes.factories,
    transportMemory: new TransportMemory({ storage: null }),
  });
  engine.open();
  engine.send('aaaa');
  engine.send('bbbb');
  engine.send('cccccccccccccccc');
  const batches = [];
  engine.once('open', () => fakes.created[0].on('sent', (p) => batches.push(p.map((x) => x.data))));
  await until(() => batches.flat().length === 3);
  assert.deepEqual(batches, [['aaaa', 'bbbb'], ['cccccccccccccccc']]);
  engine.close();
});

test('a probe that fails while the old transport pauses: the old transport runs on', async () => {
  let polling;
  let releasePause;
  const behaviours = {
    polling: (t) => {
      polling = t;
      t.pause = () => new Promise((r) => (releasePause = r));
      t.unpause = () => (t.unpaused = true);
      setTimeout(() => {
        t.writable = true;
        t.serverSend({ type: 'open', data: JSON.stringify(HANDSHAKE) });
      }, 1);
    },
    websocket: (t) => {
      setTimeout(() => {
        t.writable = true;
        t.emitEvent('open');
      }, 1);
      t.on('sent', (packets) => {
        if (packets.some((p) => p.type === 'ping')) {
          setTimeout(() => t.serverSend({ type: 'pong', data: 'probe' }), 1);
          setTimeout(() => t._onClose('transport error', new Error('proxy cut it')), 10);
        }
      });
    },
  };
  const { engine } = await connect(behaviours, { transports: ['polling', 'websocket'] });
  const upgradeErrors = [];
  engine.on('upgradeError', (e) => upgradeErrors.push(e.message));
  await until(() => upgradeErrors.length === 1);
  assert.match(upgradeErrors[0], /proxy cut it/);
  releasePause();
  await new Promise((r) => setTimeout(r, 5));
  assert.ok(polling.unpaused, 'polling was unpaused');
  assert.equal(engine.transportName, 'polling');
  assert.equal(engine.readyState, 'open');
  engine.send('still works');
  await until(() => polling.sent.some((p) => p.data === 'still works'));
  engine.close();
});

test('an old transport that never finishes pausing: the probe times out, writes flow again', async () => {
  let polling;
  const behaviours = {
    polling: (t) => {
      polling = t;
      t.pause = () => new Promise(() => {}); // a GET the server never releases
      t.unpause = () => (t.unpaused = true);
      setTimeout(() => {
        t.writable = true;
        t.serverSend({ type: 'open', data: JSON.stringify(HANDSHAKE) });
      }, 1);
    },
    websocket: 'probe-ok',
  };
  const { engine } = await connect(behaviours, { transports: ['polling', 'websocket'] });
  const upgradeErrors = [];
  engine.on('upgradeError', (e) => upgradeErrors.push(e.message));
  await until(() => upgradeErrors.length === 1);
  assert.equal(upgradeErrors[0], 'websocket probe timed out');
  assert.ok(polling.unpaused);
  engine.send('after the failed upgrade');
  await until(() => polling.sent.some((p) => p.data === 'after the failed upgrade'));
  assert.equal(engine.transportName, 'polling');
  engine.close();
});
