// The Redis adapter across 3 nodes (issue: multi-node): clients connected
// straight to each node, spread over the nodes; every cross-node operation of
// CONTRACT.md, the official @socket.io/redis-emitter, and a Node socket.io node
// (@socket.io/redis-adapter) on the same Redis.
//
//   node --test tests/cluster/adapter.test.mjs
//   CLUSTER_IMPL=node node --test tests/cluster/adapter.test.mjs   # the same against 3 Node nodes
//
// Real parts only: Debian's redis-server, the tidewire `cluster-node` binary,
// socket.io-client and the bundled client.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';

import { Emitter } from '@socket.io/redis-emitter';
import { createClient } from 'redis';

import {
  Clients,
  ack,
  answerQuestions,
  byNode,
  getNodeName,
  nextEventOf,
  nodeLogs,
  openConnected,
  recordEvent,
  sleep,
  sorted,
  startCluster,
  startNode,
  startRedis,
  waitUntil,
} from './helpers.mjs';

const IMPL = process.env.CLUSTER_IMPL || 'tidewire';
const NAMES = ['a', 'b', 'c'];
// Per node: these client kinds, connected straight to that node.
const KINDS =
  IMPL === 'tidewire'
    ? ['official-websocket', 'bundled-websocket', 'bundled-sse', 'official-polling']
    : ['official-websocket', 'bundled-websocket', 'bundled-polling', 'official-polling'];

let redis;
let cluster;
let extraNodes = [];
const clients = new Clients();
/** node name -> its sockets (KINDS order) */
let on = {};
let everyone = [];
// Members of room r1: kinds #0 and #2 of each node; #1 and #3 stay out.
let members = [];
let others = [];

/** The logs of every node (and Redis) for a failure message. */
const logs = () => `${nodeLogs([...(cluster?.nodes ?? []), ...extraNodes])}\n--- redis ---\n${redis?.logs().slice(-2000) ?? ''}`;

/** Runs `fn`; on failure rethrows with the nodes' logs appended. */
async function withLogs(fn) {
  try {
    return await fn();
  } catch (err) {
    err.message = `${err.message}\n${logs()}`;
    throw err;
  }
}

/** Waits until every socket in `want` got `count` of the recorded event, then a little longer for strays. */
async function delivered(rec, want, count, what, timeoutMs = 5000) {
  await waitUntil(
    () => want.every((s) => rec.got(s).length >= count),
    timeoutMs,
    () => `${what}: still waiting for ${want.filter((s) => rec.got(s).length < count).map((s) => `${s.label}@${s.node}`).join(', ')}`,
  );
  await sleep(300);
}

/** Asserts exactly-once delivery of `payload` to `want` and nothing to `none`. */
function assertExactlyOnce(rec, want, none, payload, what) {
  for (const s of want) {
    const got = rec.got(s).filter((p) => isDeepStrictEqual(p, payload));
    assert.equal(got.length, 1, `${what}: ${s.label} on node ${s.node} got ${JSON.stringify(payload)} ${got.length} times (all: ${JSON.stringify(rec.got(s))})`);
  }
  for (const s of none) {
    assert.deepEqual(rec.got(s), [], `${what}: ${s.label} on node ${s.node} (not a target) got ${JSON.stringify(rec.got(s))}`);
  }
}

describe(`Redis adapter across 3 ${IMPL} nodes, direct connections`, { timeout: 120_000 }, () => {
  before(async () => {
    redis = await startRedis();
    assert.equal(await redis.ping(), 'PONG', 'the Redis fixture answers PING');
    cluster = await startCluster({ impl: IMPL, count: 3, redisUrl: redis.url, names: NAMES });
    await withLogs(async () => {
      // Each node answers GET /node with its own name.
      for (const n of cluster.nodes) assert.equal(await getNodeName(n.url), n.name);
      for (const n of cluster.nodes) {
        on[n.name] = [];
        for (const kind of KINDS) {
          const [s] = await openConnected(clients, kind, n.url, 1);
          assert.equal(s.node, n.name, `${s.label} connected straight to node ${n.name} but whoami says ${s.node}`);
          answerQuestions(s, () => s.sid);
          on[n.name].push(s);
        }
      }
      everyone = Object.values(on).flat();
      members = NAMES.flatMap((name) => [on[name][0], on[name][2]]);
      others = NAMES.flatMap((name) => [on[name][1], on[name][3]]);
      for (const s of members) assert.deepEqual(await ack(s, 'join', ['r1']), { node: s.node });
      // The Redis subscriptions of every node are up before the first broadcast.
      await sleep(500);
    });
  });

  after(async () => {
    clients.close();
    await cluster?.stop();
    for (const n of extraNodes) await n.stop();
    await redis?.close();
  });

  it('a room broadcast emitted from each node reaches every member on every node exactly once, and no one else', { timeout: 30_000 }, () =>
    withLogs(async () => {
      const rec = recordEvent(everyone, 'room-msg');
      try {
        for (const name of NAMES) {
          // Emitted by a non-member on that node.
          const sender = on[name][1];
          const payload = { from: name, seq: 1 };
          assert.deepEqual(await ack(sender, 'to-room', ['r1', 'room-msg', payload]), { node: name });
        }
        await delivered(rec, members, NAMES.length, 'to-room r1');
        for (const name of NAMES) assertExactlyOnce(rec, members, others, { from: name, seq: 1 }, `to-room r1 from node ${name}`);
      } finally {
        rec.stop();
      }
    }));

  it('to-all reaches every client on every node exactly once', { timeout: 30_000 }, () =>
    withLogs(async () => {
      const rec = recordEvent(everyone, 'all-msg');
      try {
        for (const name of NAMES) await ack(on[name][3], 'to-all', ['all-msg', { from: name }]);
        await delivered(rec, everyone, NAMES.length, 'to-all');
        for (const name of NAMES) assertExactlyOnce(rec, everyone, [], { from: name }, `to-all from node ${name}`);
      } finally {
        rec.stop();
      }
    }));

  it('local-to-room reaches only the emitting node\'s members', { timeout: 30_000 }, () =>
    withLogs(async () => {
      const rec = recordEvent(everyone, 'local-msg');
      try {
        for (const name of NAMES) await ack(on[name][1], 'local-to-room', ['r1', 'local-msg', { from: name }]);
        await delivered(rec, members, 1, 'local-to-room r1');
        for (const name of NAMES) {
          const want = members.filter((s) => s.node === name);
          const none = everyone.filter((s) => !want.includes(s));
          for (const s of want) assert.deepEqual(rec.got(s), [{ from: name }], `local-to-room from ${name}: ${s.label} on ${s.node}`);
          for (const s of none) assert.ok(!rec.got(s).some((p) => p.from === name), `local-to-room from ${name} leaked to ${s.label} on node ${s.node}: ${JSON.stringify(rec.got(s))}`);
        }
      } finally {
        rec.stop();
      }
    }));

  it('ask-room collects one reply per member across all nodes', { timeout: 30_000 }, () =>
    withLogs(async () => {
      for (const name of NAMES) {
        const res = await ack(on[name][1], 'ask-room', ['r1', 3000], 8000);
        assert.equal(res.error, null, `ask-room from ${name}: error ${res.error}`);
        assert.deepEqual(sorted(res.replies), sorted(members.map((s) => s.sid)), `ask-room from node ${name}: one reply per member`);
      }
    }));

  it('fetch lists the members of every node with their rooms', { timeout: 30_000 }, () =>
    withLogs(async () => {
      for (const name of NAMES) {
        const list = await ack(on[name][3], 'fetch', ['r1']);
        assert.ok(Array.isArray(list), `fetch from ${name} answered ${JSON.stringify(list)}`);
        assert.deepEqual(list.map((e) => e.id), sorted(members.map((s) => s.sid)), `fetch r1 from node ${name}: the ids of all members, sorted`);
        for (const entry of list) {
          assert.ok(entry.rooms.includes('r1'), `fetch from ${name}: ${entry.id} rooms ${JSON.stringify(entry.rooms)} lack r1`);
        }
      }
      const all = await ack(on.a[0], 'fetch', [on.c[1].sid]);
      assert.deepEqual(all.map((e) => e.id), [on.c[1].sid], 'fetch of a socket-id room on another node finds that one socket');
    }));

  it('sockets-join moves sockets on other nodes into a room; a broadcast to it then reaches them', { timeout: 30_000 }, () =>
    withLogs(async () => {
      assert.deepEqual(await ack(on.b[1], 'fetch', ['r2']), [], 'r2 starts empty');
      await ack(on.a[1], 'sockets-join', ['r1', 'r2']);
      let list = [];
      for (let i = 0; i < 20; i++) {
        list = await ack(on.c[1], 'fetch', ['r2']);
        if (list.length === members.length) break;
        await sleep(100);
      }
      assert.deepEqual(list.map((e) => e.id), sorted(members.map((s) => s.sid)), 'after sockets-join r1 -> r2, fetch r2 lists the members of r1 on every node');
      const rec = recordEvent(everyone, 'r2-msg');
      try {
        await ack(on.c[3], 'to-room', ['r2', 'r2-msg', { x: 1 }]);
        await delivered(rec, members, 1, 'to-room r2');
        assertExactlyOnce(rec, members, others, { x: 1 }, 'to-room r2 after sockets-join');
      } finally {
        rec.stop();
      }
    }));

  it('disconnect-room disconnects the room\'s sockets on every node', { timeout: 30_000 }, () =>
    withLogs(async () => {
      // Extra clients, one per node, in room "doomed".
      const doomed = [];
      for (const n of cluster.nodes) {
        const [s] = await openConnected(clients, 'official-websocket', n.url, 1);
        await ack(s, 'join', ['doomed']);
        doomed.push(s);
      }
      const reasons = doomed.map((s) => nextEventOf(s, 'disconnect', 5000));
      const rec = recordEvent(everyone, 'disconnect');
      try {
        await ack(on.a[1], 'disconnect-room', ['doomed']);
        const got = await Promise.all(reasons);
        assert.deepEqual(got, doomed.map(() => 'io server disconnect'), 'every member of "doomed" is disconnected by the server');
        await sleep(300);
        for (const s of everyone) assert.deepEqual(rec.got(s), [], `${s.label} on ${s.node} (not in "doomed") was disconnected`);
        assert.ok(everyone.every((s) => s.connected));
      } finally {
        rec.stop();
      }
    }));

  it('server-side reaches the other nodes: their clients get "heard", the emitting node\'s do not', { timeout: 30_000 }, () =>
    withLogs(async () => {
      const rec = recordEvent(everyone, 'heard');
      try {
        await ack(on.a[0], 'server-side', [{ hi: 'from a' }]);
        const want = everyone.filter((s) => s.node !== 'a');
        const none = everyone.filter((s) => s.node === 'a');
        await delivered(rec, want, 1, 'server-side from a');
        for (const s of want) {
          assert.equal(rec.got(s).length, 1, `${s.label} on ${s.node}: ${JSON.stringify(rec.got(s))}`);
          assert.deepEqual(rec.got(s)[0].payload, { hi: 'from a' });
          assert.equal(rec.got(s)[0].node, s.node, `"heard" carries the name of the node that heard it (${s.node})`);
        }
        for (const s of none) assert.deepEqual(rec.got(s), [], `${s.label} on the emitting node a got "heard"`);
      } finally {
        rec.stop();
      }
    }));

  it('cluster lists the 3 live nodes with their socket counts', { timeout: 30_000, skip: IMPL !== 'tidewire' && 'the Node adapter has no membership view' }, () =>
    withLogs(async () => {
      const want = () =>
        NAMES.map((name) => ({ name, sockets: clients.all.filter((s) => s.connected && s.node === name).length }));
      let got;
      // Membership heartbeats may lag a disconnect: a bounded retry.
      for (let i = 0; i < 30; i++) {
        got = await ack(on.b[0], 'cluster', []);
        got = [...got].sort((x, y) => (x.name < y.name ? -1 : 1));
        if (isDeepStrictEqual(got, want())) break;
        await sleep(200);
      }
      assert.deepEqual(got, want(), 'cluster: one entry per live node with its socket count');
    }));

  it('@socket.io/redis-emitter: .to(room).emit reaches that room on every node, .emit reaches all', { timeout: 30_000 }, () =>
    withLogs(async () => {
      const redisClient = createClient({ url: redis.url });
      redisClient.on('error', () => {});
      await redisClient.connect();
      try {
        const emitter = new Emitter(redisClient);
        const rec = recordEvent(everyone, 'from-emitter');
        try {
          emitter.to('r1').emit('from-emitter', { to: 'r1' });
          await delivered(rec, members, 1, 'emitter to r1');
          assertExactlyOnce(rec, members, others, { to: 'r1' }, 'emitter.to(r1).emit');
          emitter.emit('from-emitter', { to: 'all' });
          await waitUntil(() => everyone.every((s) => rec.got(s).some((p) => p.to === 'all')), 5000, () => 'emitter.emit to all');
          await sleep(300);
          assertExactlyOnce(rec, everyone, [], { to: 'all' }, 'emitter.emit');
        } finally {
          rec.stop();
        }
      } finally {
        await redisClient.quit().catch(() => {});
      }
    }));

  it('a Node socket.io node (@socket.io/redis-adapter) on the same Redis: broadcasts both ways, ask-room across', { timeout: 40_000 }, () =>
    withLogs(async () => {
      const nodeNode = await startNode({ impl: 'node', name: 'n', redisUrl: redis.url });
      extraNodes.push(nodeNode);
      const onN = [];
      for (const kind of ['official-websocket', 'bundled-polling']) {
        const [s] = await openConnected(clients, kind, nodeNode.url, 1);
        assert.equal(s.node, 'n');
        answerQuestions(s, () => s.sid);
        onN.push(s);
      }
      await ack(onN[0], 'join', ['r1']);
      await sleep(500);
      const allMembers = [...members, onN[0]];
      const all = [...everyone, ...onN];
      const nonMembers = all.filter((s) => !allMembers.includes(s));
      const rec = recordEvent(all, 'mixed');
      try {
        // From the Node node to r1: tidewire members too.
        await ack(onN[1], 'to-room', ['r1', 'mixed', { from: 'n' }]);
        // From a tidewire node to r1: the Node node's member too.
        await ack(on.b[1], 'to-room', ['r1', 'mixed', { from: 'b' }]);
        await delivered(rec, allMembers, 2, 'to-room r1 across implementations');
        assertExactlyOnce(rec, allMembers, nonMembers, { from: 'n' }, 'to-room r1 from the Node node');
        assertExactlyOnce(rec, allMembers, nonMembers, { from: 'b' }, 'to-room r1 from tidewire node b');
      } finally {
        rec.stop();
      }
      const res = await ack(onN[1], 'ask-room', ['r1', 3000], 8000);
      assert.equal(res.error, null, `ask-room from the Node node: error ${res.error}`);
      assert.deepEqual(sorted(res.replies), sorted(allMembers.map((s) => s.sid)), 'ask-room from the Node node: one reply per member, tidewire clients included');
    }));
});
