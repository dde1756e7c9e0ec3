// Unit tests of the fault-injection proxy itself: it forwards bytes, and its
// faults do what they claim, seen from both ends (a plain TCP server stands in
// for the Socket.IO server).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { FaultProxy, makeRng, sleep } from './proxy.mjs';

/** A TCP server that records the server side of every connection. */
async function startBackend() {
  const sockets = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const rec = { socket, data: '', ended: false, closed: false, errors: [] };
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      rec.data += d;
      if (d.includes('ECHO:')) socket.write(d.replace('ECHO:', 'BACK:'));
    });
    socket.on('end', () => {
      rec.ended = true;
    });
    socket.on('close', () => {
      rec.closed = true;
    });
    socket.on('error', (e) => rec.errors.push(e.code));
    sockets.push(rec);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, sockets, port: server.address().port };
}

/** A client connection through the proxy, recording what it sees. */
async function connectClient(port) {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const rec = { socket, data: '', ended: false, closed: false, errors: [] };
  socket.setEncoding('utf8');
  socket.on('data', (d) => {
    rec.data += d;
  });
  socket.on('end', () => {
    rec.ended = true;
  });
  socket.on('close', () => {
    rec.closed = true;
  });
  socket.on('error', (e) => rec.errors.push(e.code));
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return rec;
}

async function until(cond, ms = 2_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('fault proxy', () => {
  let backend;
  let proxy;
  before(async () => {
    backend = await startBackend();
    proxy = new FaultProxy({ targetPort: backend.port, rng: makeRng(42) });
    await proxy.listen();
  });
  after(async () => {
    await proxy.close();
    for (const s of backend.sockets) s.socket.destroy();
    await new Promise((resolve) => backend.server.close(resolve));
  });

  /** A fresh client connection and its server side. */
  async function pair() {
    const before = backend.sockets.length;
    const client = await connectClient(proxy.port);
    await until(() => backend.sockets.length > before, 2_000, 'the backend connection');
    return { client, server: backend.sockets[backend.sockets.length - 1] };
  }

  test('forwards bytes both ways, and an orderly close', async () => {
    const { client, server } = await pair();
    const big = 'x'.repeat(1 << 20);
    client.socket.write(`ECHO:hello|${big}`);
    await until(() => server.data.length === 11 + big.length, 5_000, 'the upload');
    await until(() => client.data.startsWith('BACK:hello|'), 5_000, 'the echo');
    server.socket.write('more');
    await until(() => client.data.endsWith('more'), 2_000, 'server bytes');
    client.socket.end();
    await until(() => server.ended, 2_000, 'the FIN upstream');
    server.socket.end();
    await until(() => client.ended && client.closed, 2_000, 'the FIN downstream');
  });

  test('rst: the client gets a reset, the server side is closed', async () => {
    const { client, server } = await pair();
    proxy.rst();
    await until(() => client.closed, 2_000, 'client close');
    assert.deepEqual(client.errors, ['ECONNRESET']);
    // The upstream socket is destroyed: the server reads its end.
    await until(() => server.ended || server.closed, 2_000, 'server end');
    assert.equal(proxy.cuts.rst, 1);
  });

  test('fin: both sides get an orderly end, no error', async () => {
    const { client, server } = await pair();
    proxy.fin();
    await until(() => client.ended && server.ended, 2_000, 'both ends');
    assert.deepEqual(client.errors, []);
    assert.deepEqual(server.errors, []);
    assert.equal(proxy.cuts.fin, 1);
  });

  test('half-open: the client is reset, the server side stays open and receives nothing', async () => {
    const { client, server } = await pair();
    client.socket.write('before');
    await until(() => server.data === 'before', 2_000, 'the first bytes');
    proxy.halfOpen();
    await until(() => client.closed, 2_000, 'client close');
    assert.deepEqual(client.errors, ['ECONNRESET']);
    // The server can still write (into the void) and sees no end, close or error.
    server.socket.write('into the void');
    await sleep(500);
    assert.equal(server.ended, false, 'server side got no FIN');
    assert.equal(server.closed, false, 'server side still open');
    assert.deepEqual(server.errors, []);
    assert.equal(server.data, 'before', 'nothing arrives after the cut');
    assert.equal(client.data, '', 'the client got nothing');
    const conn = [...proxy.conns].find((c) => c.state === 'halfOpen');
    assert.ok(conn, 'the proxy keeps the half-open connection');
    assert.ok(conn.discarded > 0, 'what the server wrote was swallowed');
    // When the server gives up (its heartbeat), the proxy lets the connection go.
    server.socket.end();
    await until(() => server.closed, 2_000, 'server close after its own end');
    await until(() => !proxy.conns.has(conn), 2_000, 'the proxy to drop the connection');
    assert.equal(proxy.cuts.halfOpen, 1);
  });

  test('stall: nothing moves for the duration, then everything arrives', async () => {
    const { client, server } = await pair();
    const stalled = proxy.stall(600);
    client.socket.write('up');
    server.socket.write('down');
    await sleep(400);
    assert.equal(server.data, '');
    assert.equal(client.data, '');
    await stalled;
    await until(() => server.data === 'up' && client.data === 'down', 2_000, 'the held bytes');
    client.socket.destroy();
  });

  test('refuse: new connections are reset for the duration, the live ones too', async () => {
    const { client } = await pair();
    const refusing = proxy.refuse(500);
    await until(() => client.closed, 2_000, 'the live connection to be cut');
    const refusedBefore = proxy.stats.refused;
    const second = net.connect({ host: '127.0.0.1', port: proxy.port });
    const outcome = await new Promise((resolve) => {
      let got = '';
      second.on('error', (e) => resolve(e.code));
      second.on('close', () => resolve(`close:${got}`));
      second.on('data', (d) => {
        got += d;
      });
    });
    assert.match(outcome, /ECONNRESET|close:/);
    assert.equal(proxy.stats.refused, refusedBefore + 1);
    await refusing;
    const { client: third } = await pair();
    assert.equal(third.closed, false, 'accepted again after the window');
    third.socket.destroy();
  });

  test("resume cut: the reconnection is cut on the server's CONNECT reply", async () => {
    const { client } = await pair();
    proxy.resumeCut();
    await until(() => client.closed, 2_000, 'the first cut');
    const onReply = proxy.stats.resumeCutOnReply;
    const { client: again, server } = await pair();
    server.socket.write('0{"sid":"engine"}');
    await sleep(10);
    server.socket.write('40{"sid":"abc","pid":"p"}');
    await until(() => again.closed, 2_000, 'the cut of the reconnection');
    assert.equal(proxy.stats.resumeCutOnReply, onReply + 1);
    assert.equal(proxy.cuts.resume, 1);
  });

  test('resume cut without a CONNECT reply: cut within 100 ms anyway', async () => {
    proxy.armResumeCut();
    const { client } = await pair();
    const t0 = Date.now();
    await until(() => client.closed, 2_000, 'the timed cut');
    assert.ok(Date.now() - t0 < 500);
  });
});
