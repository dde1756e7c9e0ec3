// Interop: the official `socket.io-client` (Socket.IO v5 protocol) against
// tidewire's `sio-test-server` example, over WebSocket only and over the
// default polling -> WebSocket upgrade. The server's behaviour is documented
// at the top of examples/sio_test_server/main.rs.
//
// Run by hand (from the repo root):
//   cargo build -p tidewire-examples          # builds target/debug/sio-test-server
//   (cd tests/interop && npm ci)              # once
//   node --test tests/interop/socket_io.test.mjs
// Variables: CARGO_TARGET_DIR (where the binary was built), SIO_TEST_SERVER_BIN
// (another server following the same contract), RUST_LOG=debug
// INTEROP_SERVER_LOGS=1 (show the server's logs).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Socket as EngineSocket } from 'engine.io-client';
import { io } from 'socket.io-client';

import { debugBinary, nextEvent, sleep, startServer, waitUntil } from './helpers.mjs';

const SERVER_BIN = process.env.SIO_TEST_SERVER_BIN || debugBinary('sio-test-server');
const TEST_TIMEOUT = { timeout: 20_000 };
const TRANSPORTS = [
  { name: 'websocket only', opts: { transports: ['websocket'] } },
  { name: 'polling then upgrade', opts: {} },
];

let server;
before(async () => {
  server = await startServer(SERVER_BIN);
});
after(async () => {
  await server?.stop();
});

const open = new Set();
after(() => {
  for (const s of open) s.disconnect();
});

/** Connects a socket.io-client socket (own connection unless `shared`); resolves once connected. */
async function connect(nsp = '/', opts = {}, { shared = false } = {}) {
  const socket = io(server.url + nsp, { forceNew: !shared, reconnection: false, ...opts });
  open.add(socket);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connect to ${nsp} within 5000 ms`)), 5_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(new Error(`connect_error on ${nsp}: ${err.message}`));
    });
  });
  return socket;
}

/** Waits for a transport upgrade to finish when the socket started on polling. */
async function settled(socket, opts) {
  if (!opts.transports) {
    await waitUntil(() => socket.io.engine.transport.name === 'websocket', 5_000, () => 'upgrade to websocket');
  }
  return socket;
}

/** Emits with an ack callback; resolves with every ack argument. */
function request(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(3_000).emit(event, ...args, (err, ...reply) => (err ? reject(new Error(`no ack for ${event}: ${err.message}`)) : resolve(reply)));
  });
}

/** Collects every `event` a socket receives. */
function collect(socket, event) {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

for (const { name, opts } of TRANSPORTS) {
  describe(`socket.io-client, ${name}`, () => {
    test('connects, gets its id in CONNECT and a welcome event after it', TEST_TIMEOUT, async () => {
      const socket = io(server.url, { forceNew: true, reconnection: false, ...opts });
      open.add(socket);
      const [welcome] = await nextEvent(socket, 'welcome', 5_000);
      assert.ok(socket.connected, 'connected before the welcome event is delivered');
      assert.equal(welcome.id, socket.id);
      assert.equal(welcome.ns, '/');
      assert.deepEqual(welcome.auth, {});
      await settled(socket, opts);
      socket.disconnect();
    });

    test('events client -> server with several arguments and an ack', TEST_TIMEOUT, async () => {
      const socket = await connect('/', opts);
      await settled(socket, opts);
      const reply = await request(socket, 'echo', 1, 'two', { three: [3] }, null, true);
      assert.deepEqual(reply, [1, 'two', { three: [3] }, null, true]);
      assert.deepEqual(await request(socket, 'echo'), []);
      socket.disconnect();
    });

    test('events server -> client with several arguments, binary included', TEST_TIMEOUT, async () => {
      const socket = await connect('/', opts);
      const multi = nextEvent(socket, 'multi', 3_000);
      assert.deepEqual(await request(socket, 'server-emit'), [true]);
      const [a, b, c, d] = await multi;
      assert.deepEqual([a, b, c], [1, 'two', { three: 3 }]);
      assert.ok(Buffer.isBuffer(d), 'the binary argument arrives as a Buffer');
      assert.deepEqual([...d], [1, 2]);
      socket.disconnect();
    });

    test('serde-typed handler: good input answered, bad input reported through the ack', TEST_TIMEOUT, async () => {
      const socket = await connect('/', opts);
      assert.deepEqual(await request(socket, 'typed', { a: 41 }), [42]);
      const [bad] = await request(socket, 'typed', 'not an object');
      assert.match(bad.error, /invalid arguments for `typed`/);
      // The connection survived.
      assert.deepEqual(await request(socket, 'typed', { a: 1 }), [2]);
      socket.disconnect();
    });

    test('acks client -> server time out on the client when the server never answers', TEST_TIMEOUT, async () => {
      const socket = await connect('/', opts);
      await assert.rejects(socket.timeout(300).emitWithAck('nobody-handles-this', 1), /operation has timed out/);
      assert.ok(socket.connected);
      socket.disconnect();
    });

    test('acks server -> client: answered, and timed out when the client stays silent', TEST_TIMEOUT, async () => {
      const socket = await connect('/', opts);
      socket.on('question', (q, cb) => cb({ answer: `${q}!` }));
      socket.on('silent', () => {});
      assert.deepEqual(await request(socket, 'ask', { event: 'question', data: 'why', timeoutMs: 2000 }), [{ ok: { answer: 'why!' } }]);
      const started = Date.now();
      const [timedOut] = await request(socket, 'ask', { event: 'silent', data: 1, timeoutMs: 300 });
      assert.match(timedOut.error, /timed out/);
      assert.ok(Date.now() - started >= 250, 'the server waited for its timeout');
      socket.disconnect();
    });

    test('binary payloads both ways (top level and nested)', TEST_TIMEOUT, async () => {
      const socket = await connect('/', opts);
      await settled(socket, opts);
      const big = Buffer.alloc(100_000, 7);
      const [first, nested] = await request(socket, 'echo', Buffer.from([0, 1, 255]), { file: big, list: [Buffer.from('x')] });
      assert.deepEqual([...first], [0, 1, 255]);
      assert.ok(nested.file.equals(big));
      assert.equal(nested.list[0].toString(), 'x');
      const [info, body] = await request(socket, 'upload', { name: 'a.bin', body: Buffer.from([5, 6, 7]) });
      assert.deepEqual(info, { name: 'a.bin', size: 3 });
      assert.deepEqual([...body], [5, 6, 7]);
      socket.disconnect();
    });

    test('middleware refuses a wrong token with message and data, accepts the right one', TEST_TIMEOUT, async () => {
      const refused = io(`${server.url}/admin`, { forceNew: true, reconnection: false, auth: { token: 'wrong' }, ...opts });
      open.add(refused);
      const [err] = await nextEvent(refused, 'connect_error', 5_000);
      assert.equal(err.message, 'unauthorized');
      assert.deepEqual(err.data, { reason: 'bad token' });
      assert.equal(refused.connected, false);
      refused.close();

      const admin = await connect('/admin', { auth: { token: 'secret', user: 'ada' }, ...opts });
      assert.deepEqual(await request(admin, 'whoami'), [{ ns: '/admin', user: 'ada' }]);
      admin.disconnect();
    });

    test('several namespaces over one connection (static, dynamic, and an unknown one)', TEST_TIMEOUT, async () => {
      const main = await connect('/', opts, { shared: false });
      const manager = main.io;
      const admin = manager.socket('/admin', { auth: { token: 'secret', user: 'bo' } });
      const dyn = manager.socket('/dyn-blue');
      const unknown = manager.socket('/nope');
      open.add(admin).add(dyn).add(unknown);
      // Sockets of an open manager connect on their own (autoConnect).
      const refused = nextEvent(unknown, 'connect_error', 5_000);
      await Promise.all([nextEvent(admin, 'connect', 5_000), nextEvent(dyn, 'connect', 5_000)]);
      const [err] = await refused;
      assert.equal(err.message, 'Invalid namespace');

      assert.equal(Object.keys(manager.nsps).length >= 3, true);
      assert.notEqual(main.id, admin.id, 'each namespace gets its own socket id');
      const [[who], [dynName], [echoed]] = await Promise.all([
        request(admin, 'whoami'),
        request(dyn, 'name'),
        request(main, 'echo', 'main'),
      ]);
      assert.deepEqual(who, { ns: '/admin', user: 'bo' });
      assert.equal(dynName, '/dyn-blue');
      assert.equal(echoed, 'main');

      // Leaving one namespace keeps the others.
      admin.disconnect();
      await sleep(50);
      assert.deepEqual(await request(dyn, 'echo', 'still here'), ['still here']);
      assert.ok(main.connected);
      main.disconnect();
      dyn.disconnect();
      unknown.close();
    });

    test('rooms: join, leave, broadcast to a room with except, fetch sockets', TEST_TIMEOUT, async () => {
      const room = `room-${Math.random().toString(36).slice(2)}`;
      const muted = `${room}-muted`;
      const [a, b, c] = await Promise.all([connect('/', opts), connect('/', opts), connect('/', opts)]);
      for (const s of [a, b, c]) {
        const [rooms] = await request(s, 'join', room);
        assert.ok(rooms.includes(room) && rooms.includes(s.id), `rooms of ${s.id}: ${rooms}`);
      }
      await request(c, 'join', muted);
      assert.deepEqual(await request(a, 'count', room), [3]);

      const gotA = collect(a, 'hey');
      const gotB = collect(b, 'hey');
      const gotC = collect(c, 'hey');
      assert.deepEqual(await request(a, 'to-room', { room, except: [muted], event: 'hey', data: { n: 1 } }), ['sent']);
      await waitUntil(() => gotB.length === 1, 3_000, () => 'b receives the broadcast');
      await sleep(100);
      assert.deepEqual(gotB, [[{ n: 1 }]]);
      assert.deepEqual(gotA, [], 'the sender is excluded (socket.to)');
      assert.deepEqual(gotC, [], 'sockets in the except room are excluded');

      // Without except, c receives it too; after leaving, b does not.
      await request(b, 'leave', room);
      await request(a, 'to-room', { room, event: 'hey', data: 2 });
      await waitUntil(() => gotC.length === 1, 3_000, () => 'c receives the second broadcast');
      await sleep(100);
      assert.equal(gotB.length, 1, 'b left the room');

      // Server-side: move every socket of the room into another room.
      const moved = `${room}-moved`;
      assert.deepEqual(await request(a, 'sockets-join', { from: room, to: moved }), [true]);
      assert.deepEqual(await request(a, 'count', moved), [2]);

      // io.emit reaches everyone, the sender included.
      const all = [a, b, c].map((s) => nextEvent(s, 'everyone', 3_000));
      await request(b, 'to-all', { room: '', event: 'everyone', data: 'hi' });
      assert.deepEqual(await Promise.all(all), [['hi'], ['hi'], ['hi']]);
      for (const s of [a, b, c]) s.disconnect();
    });

    test('broadcast with acks collects every reply within the timeout', TEST_TIMEOUT, async () => {
      const room = `acks-${Math.random().toString(36).slice(2)}`;
      const [asker, yes, silent] = await Promise.all([connect('/', opts), connect('/', opts), connect('/', opts)]);
      await request(yes, 'join', room);
      await request(silent, 'join', room);
      yes.on('poll', (q, cb) => cb(`yes to ${q}`));
      silent.on('poll', () => {});
      const started = Date.now();
      const [answer] = await request(asker, 'ask-room', { room, event: 'poll', data: 'pizza', timeoutMs: 400 });
      assert.ok(Date.now() - started >= 350, 'waited for the silent socket until the timeout');
      const byId = Object.fromEntries(answer.replies.map((r) => [r.id, r]));
      assert.deepEqual(Object.keys(byId).sort(), [yes.id, silent.id].sort());
      assert.equal(byId[yes.id].ok, 'yes to pizza');
      assert.match(byId[silent.id].error, /timed out/);

      // When everyone answers, the result comes before the timeout.
      silent.off('poll');
      silent.on('poll', (q, cb) => cb('ok'));
      const quick = Date.now();
      const [all] = await request(asker, 'ask-room', { room, event: 'poll', data: 'x', timeoutMs: 5000 });
      assert.ok(Date.now() - quick < 2000);
      assert.equal(all.replies.filter((r) => 'ok' in r).length, 2);
      for (const s of [asker, yes, silent]) s.disconnect();
    });

    test('server-initiated disconnect: one namespace, a whole connection, a room', TEST_TIMEOUT, async () => {
      const observer = await connect('/', opts);
      await request(observer, 'watch');
      const left = collect(observer, 'left');

      const one = await connect('/', opts);
      const oneId = one.id; // the client forgets its id once disconnected
      const gone = nextEvent(one, 'disconnect', 3_000);
      one.emit('disconnect-me');
      assert.deepEqual((await gone)[0], 'io server disconnect');
      await waitUntil(() => left.some(([l]) => l.id === oneId), 3_000, () => 'observer told about disconnect-me');
      assert.equal(left.find(([l]) => l.id === oneId)[0].reason, 'server namespace disconnect');

      // close-me closes the connection: every namespace of it goes.
      const main = await connect('/', opts);
      const admin = main.io.socket('/admin', { auth: { token: 'secret' } });
      open.add(admin);
      await nextEvent(admin, 'connect', 3_000);
      const adminId = admin.id;
      const mainGone = nextEvent(main, 'disconnect', 3_000);
      const adminGone = nextEvent(admin, 'disconnect', 3_000);
      main.emit('close-me');
      await Promise.all([mainGone, adminGone]);
      await waitUntil(() => left.some(([l]) => l.id === adminId), 3_000, () => 'observer told about the admin socket');

      // A client-side disconnect and a dropped transport are reported with their reasons.
      const quitter = await connect('/', opts);
      const quitterId = quitter.id;
      quitter.disconnect();
      const dropped = await connect('/', opts);
      const droppedId = dropped.id;
      dropped.io.engine.close();
      await waitUntil(
        () => left.some(([l]) => l.id === quitterId) && left.some(([l]) => l.id === droppedId),
        3_000,
        () => `observer saw ${JSON.stringify(left)}`,
      );
      assert.equal(left.find(([l]) => l.id === quitterId)[0].reason, 'client namespace disconnect');
      assert.equal(left.find(([l]) => l.id === droppedId)[0].reason, 'transport close');

      // Disconnect every socket of a room from the server.
      const room = `kick-${Math.random().toString(36).slice(2)}`;
      const [k1, k2] = await Promise.all([connect('/', opts), connect('/', opts)]);
      await request(k1, 'join', room);
      await request(k2, 'join', room);
      const kicked = [nextEvent(k1, 'disconnect', 3_000), nextEvent(k2, 'disconnect', 3_000)];
      await request(observer, 'disconnect-room', room);
      assert.deepEqual((await Promise.all(kicked)).map(([r]) => r), ['io server disconnect', 'io server disconnect']);
      assert.ok(observer.connected);
      observer.disconnect();
    });
  });
}

describe('malformed input', () => {
  test('a malformed packet closes only that client', TEST_TIMEOUT, async () => {
    const healthy = await connect('/', { transports: ['websocket'] });
    for (const bad of ['2{not json', '9', '51-["a",{"_placeholder":true,"num":5}]', '2["disconnect"]', '511-["a"]', '3["no id"]']) {
      const raw = new EngineSocket(server.url, { path: '/socket.io/', transports: ['websocket'] });
      await nextEvent(raw, 'open', 3_000);
      raw.send('0');
      await nextEvent(raw, 'message', 3_000); // the CONNECT answer
      const closed = nextEvent(raw, 'close', 3_000, `close after ${bad}`);
      raw.send(bad);
      if (bad.startsWith('51-')) raw.send(new Uint8Array([1]));
      await closed;
    }
    // Binary data with no binary packet waiting also closes the client.
    const raw = new EngineSocket(server.url, { path: '/socket.io/', transports: ['websocket'] });
    await nextEvent(raw, 'open', 3_000);
    const closed = nextEvent(raw, 'close', 3_000);
    raw.send(new Uint8Array([1, 2, 3]));
    await closed;

    assert.ok(healthy.connected);
    assert.deepEqual(await request(healthy, 'echo', 'fine'), ['fine']);
    healthy.disconnect();
  });
});

describe('connect timeout (CONNECT_TIMEOUT_MS=300)', () => {
  let short;
  before(async () => {
    short = await startServer(SERVER_BIN, { CONNECT_TIMEOUT_MS: '300' });
  });
  after(async () => {
    await short?.stop();
  });

  test('a connection that joins no namespace is closed; one that joins stays', TEST_TIMEOUT, async () => {
    const idle = new EngineSocket(short.url, { path: '/socket.io/', transports: ['websocket'] });
    await nextEvent(idle, 'open', 3_000);
    const joined = io(short.url, { forceNew: true, reconnection: false, transports: ['websocket'] });
    open.add(joined);
    await nextEvent(joined, 'connect', 3_000);
    const started = Date.now();
    await nextEvent(idle, 'close', 3_000, 'the idle connection to close');
    assert.ok(Date.now() - started >= 200);
    await sleep(200);
    assert.ok(joined.connected, 'a socket that joined a namespace is kept');
    joined.disconnect();
  });
});
