// Sessions behind a load balancer WITHOUT sticky sessions: 3 nodes behind a
// plain round-robin nginx (tests/nginx/cluster-round-robin.conf), so each HTTP
// request of one client (polling GETs and POSTs, the SSE stream and its POSTs,
// the WebSocket upgrade) may land on a different node. tidewire must keep every
// session working; plain socket.io (the Node reference) cannot, which proves the
// fixture really is non-sticky. Then the same behind ip_hash (cluster-sticky.conf).
//
//   node --test tests/cluster/no-sticky.test.mjs
//
// NO_STICKY_CLIENTS (default 20) clients of each kind; STAY_MS (default 5000).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';

import {
  Clients,
  ack,
  connected,
  getNodeName,
  nodeLogs,
  proxyLogs,
  recordEvent,
  sleep,
  startCluster,
  startNginx,
  startRedis,
  transportOf,
  waitUntil,
} from './helpers.mjs';

const N = Number(process.env.NO_STICKY_CLIENTS ?? 20);
const STAY_MS = Number(process.env.STAY_MS ?? 5000);
// The implementation under test (CLUSTER_IMPL=node runs the tidewire cases against Node nodes: a harness check).
const IMPL = process.env.CLUSTER_IMPL || 'tidewire';
const KINDS = ['official-polling', 'official-default', 'bundled-websocket', 'bundled-sse', 'bundled-polling'];

let redis;

before(async () => {
  redis = await startRedis();
  assert.equal(await redis.ping(), 'PONG', 'the Redis fixture answers PING');
});

after(async () => {
  await redis?.close();
});

/** GET /node `times` through `proxy`, one after the other: the names in order. */
async function spread(proxy, times = 6) {
  const names = [];
  for (let i = 0; i < times; i++) names.push(await getNodeName(proxy.url));
  return names;
}

const countBy = (list) => list.reduce((acc, x) => ({ ...acc, [x]: (acc[x] ?? 0) + 1 }), {});

/**
 * Opens N clients of `kind` through `url`; each joins a room of its own kind,
 * one of them broadcasts to the room, then all stay for STAY_MS. Returns the
 * stats (nothing asserted here).
 */
async function exercise(kind, url, { connectTimeoutMs = 15_000 } = {}) {
  const clients = new Clients();
  const room = `room-${kind}`;
  try {
    const sockets = Array.from({ length: N }, () => clients.open(kind, url));
    const connects = await Promise.allSettled(sockets.map((s) => connected(s, connectTimeoutMs)));
    const up = sockets.filter((_, i) => connects[i].status === 'fulfilled');
    const joins = await Promise.allSettled(up.map((s) => ack(s, 'join', [room], 8000).then((r) => (s.node = r.node))));
    const joined = up.filter((_, i) => joins[i].status === 'fulfilled');
    const rec = recordEvent(sockets, 'room-msg');
    const payload = { kind, at: Date.now() };
    let sendError = null;
    if (joined.length > 0) {
      await ack(joined[0], 'to-room', [room, 'room-msg', payload], 8000).catch((err) => (sendError = err.message));
      await waitUntil(() => joined.every((s) => rec.got(s).length > 0), 5000, () => 'room broadcast').catch(() => {});
    }
    // Stay: no disconnect in this window.
    const windowStart = Date.now();
    await sleep(STAY_MS);
    const received = sockets.filter((s) => rec.got(s).length === 1 && isDeepStrictEqual(rec.got(s)[0], payload));
    const duplicates = sockets.filter((s) => rec.got(s).length > 1);
    const disconnectsInWindow = sockets.filter((s) => s.lifecycle.some((e) => e.type === 'disconnect' && e.at >= windowStart));
    const everDisconnected = sockets.filter((s) => s.lifecycle.some((e) => e.type === 'disconnect'));
    const stayed = sockets.filter((s) => joined.includes(s) && s.connected && !disconnectsInWindow.includes(s));
    const connectErrors = sockets.reduce((n, s) => n + s.lifecycle.filter((e) => e.type === 'connect_error').length, 0);
    const transports = countBy(sockets.filter((s) => s.connected).map((s) => transportOf(s) ?? '?'));
    const nodes = countBy(joined.map((s) => s.node));
    const firstErrors = [...new Set(sockets.flatMap((s) => s.lifecycle.filter((e) => e.type !== 'connect').map((e) => `${e.type}: ${e.detail}`)))].slice(0, 5);
    return {
      kind,
      connected: up.length,
      joined: joined.length,
      received: received.length,
      duplicates: duplicates.length,
      stayed: stayed.length,
      everDisconnected: everDisconnected.length,
      connectErrors,
      transports,
      nodes,
      sendError,
      firstErrors,
    };
  } finally {
    clients.close();
  }
}

const summary = (s) =>
  `${s.kind}: ${s.connected}/${N} connected, ${s.joined} joined, ${s.received} got the room broadcast once` +
  ` (${s.duplicates} duplicated), ${s.stayed} stayed ${STAY_MS} ms, ${s.everDisconnected} ever disconnected,` +
  ` ${s.connectErrors} connect_errors, transports ${JSON.stringify(s.transports)}, nodes ${JSON.stringify(s.nodes)}` +
  (s.sendError ? `, broadcast failed: ${s.sendError}` : '') +
  (s.firstErrors.length ? `, events: ${s.firstErrors.join(' | ')}` : '');

function assertAll(s, cluster, proxyText) {
  const ok = s.connected === N && s.joined === N && s.received === N && s.duplicates === 0 && s.stayed === N && s.everDisconnected === 0;
  assert.ok(ok, `${summary(s)}\n${proxyText}\n${nodeLogs(cluster.nodes)}`);
}

describe(`3 ${IMPL} nodes behind round-robin nginx (no sticky sessions)`, { timeout: 180_000 }, () => {
  let cluster;
  let proxy;

  before(async () => {
    cluster = await startCluster({ impl: IMPL, count: 3, redisUrl: redis.url });
    proxy = await startNginx('cluster-round-robin', cluster.ports);
  });

  after(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  it('the fixture spreads 6 GET /node over the 3 nodes, round robin', async (t) => {
    if (cluster.convergedMs !== undefined) t.diagnostic(`the 3 nodes saw each other (cluster) ${cluster.convergedMs} ms after the last one started`);
    const names = await spread(proxy);
    t.diagnostic(`round-robin GET /node: ${names.join(' ')}`);
    console.log(`# round-robin GET /node: ${names.join(' ')}`);
    assert.deepEqual(countBy(names), { a: 2, b: 2, c: 2 }, `6 requests, 2 per node: ${names.join(' ')}`);
    for (let i = 1; i < names.length; i++) assert.notEqual(names[i], names[i - 1], `two consecutive requests went to the same node: ${names.join(' ')}`);
  });

  for (const kind of KINDS) {
    it(`${N} ${kind} clients connect, join, get a room broadcast and stay ${STAY_MS} ms`, { timeout: 60_000 }, async (t) => {
      const s = await exercise(kind, proxy.url);
      t.diagnostic(summary(s));
      console.log(`# ${IMPL} round-robin ${summary(s)}`);
      assertAll(s, cluster, await proxyLogs(proxy));
      if (kind === 'bundled-sse') assert.deepEqual(s.transports, { sse: N }, 'the bundled client forced to SSE stays on SSE');
      if (kind === 'bundled-websocket') assert.deepEqual(s.transports, { websocket: N });
      if (kind.endsWith('polling')) assert.deepEqual(s.transports, { polling: N });
      if (kind === 'official-default') assert.deepEqual(s.transports, { websocket: N }, 'the official client upgraded polling -> websocket through round robin');
      assert.equal(Object.keys(s.nodes).length, 3, `the ${N} sessions live on all 3 nodes: ${JSON.stringify(s.nodes)}`);
    });
  }
});

describe('3 Node socket.io nodes behind the same round-robin nginx (proves the fixture is non-sticky)', { timeout: 60_000 }, () => {
  let cluster;
  let proxy;

  before(async () => {
    cluster = await startCluster({ impl: 'node', count: 3, redisUrl: redis.url });
    proxy = await startNginx('cluster-round-robin', cluster.ports);
  });

  after(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  it('the fixture spreads GET /node over the 3 Node nodes', async () => {
    const names = await spread(proxy);
    assert.deepEqual(countBy(names), { a: 2, b: 2, c: 2 }, `6 requests, 2 per node: ${names.join(' ')}`);
  });

  it(`official client polling-only: how many of ${N} connect and stay (expected near 0)`, { timeout: 40_000 }, async (t) => {
    const s = await exercise('official-polling', proxy.url, { connectTimeoutMs: 5000 });
    const line = `Node socket.io behind round-robin nginx, ${summary(s)}`;
    t.diagnostic(line);
    console.log(`# ${line}`);
    assert.ok(s.stayed < N, `plain socket.io kept all ${N} polling sessions behind round robin: the fixture is not round robin?\n${line}`);
  });
});

describe(`3 ${IMPL} nodes behind nginx with ip_hash (sticky)`, { timeout: 180_000 }, () => {
  let cluster;
  let proxy;

  before(async () => {
    cluster = await startCluster({ impl: IMPL, count: 3, redisUrl: redis.url });
    proxy = await startNginx('cluster-sticky', cluster.ports);
  });

  after(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  it('the fixture pins 6 GET /node to one node', async (t) => {
    const names = await spread(proxy);
    t.diagnostic(`ip_hash GET /node: ${names.join(' ')}`);
    console.log(`# ip_hash GET /node: ${names.join(' ')}`);
    assert.equal(new Set(names).size, 1, `all 6 requests on one node: ${names.join(' ')}`);
  });

  for (const kind of KINDS) {
    it(`${N} ${kind} clients connect, join, get a room broadcast and stay ${STAY_MS} ms`, { timeout: 60_000 }, async (t) => {
      const s = await exercise(kind, proxy.url);
      t.diagnostic(summary(s));
      console.log(`# ${IMPL} ip_hash ${summary(s)}`);
      assertAll(s, cluster, await proxyLogs(proxy));
      assert.equal(Object.keys(s.nodes).length, 1, `ip_hash puts every session on one node: ${JSON.stringify(s.nodes)}`);
    });
  }
});
