// A node dies mid-stream: 3 tidewire nodes behind round-robin nginx
// (tests/nginx/cluster-round-robin.conf), 12 bundled clients (websocket, SSE,
// polling) and 6 official clients (websocket) in room "stream". A client
// connected straight to a node that survives streams 1..600 to the room; after
// ~1.5 s another node holding clients is SIGKILLed. Its clients reconnect
// through nginx to the survivors and, with connection state recovery, every
// client ends with exactly 1..600: no gap, no duplicate.
//
//   node --test tests/cluster/failover.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  Clients,
  ack,
  connected,
  describeLifecycle,
  describeSequence,
  getNodeName,
  nodeLogs,
  proxyLogs,
  openConnected,
  sleep,
  startCluster,
  startNginx,
  startRedis,
  waitUntil,
  whoami,
} from './helpers.mjs';

// CLUSTER_IMPL=node runs the same against Node nodes (no recovery there: a harness check, expected to fail).
const IMPL = process.env.CLUSTER_IMPL || 'tidewire';
const COUNT = 600;
const INTERVAL_MS = 10;
const KILL_AFTER_MS = 1500;
const CLIENT_MIX =
  IMPL === 'tidewire'
    ? [
        ['bundled-websocket', 4],
        ['bundled-sse', 4],
        ['bundled-polling', 4],
        ['official-websocket', 6],
      ]
    : // Plain socket.io behind round robin only works over WebSocket (and has no SSE).
      [
        ['bundled-websocket', 4],
        ['official-websocket', 6],
      ];

describe(`failover: a ${IMPL} node is SIGKILLed while streaming to a room`, { timeout: 120_000 }, () => {
  let redis;
  let cluster;
  let proxy;
  const clients = new Clients();

  before(async () => {
    redis = await startRedis();
    assert.equal(await redis.ping(), 'PONG');
    cluster = await startCluster({ impl: IMPL, count: 3, redisUrl: redis.url });
    proxy = await startNginx('cluster-round-robin', cluster.ports);
  });

  after(async () => {
    clients.close();
    await proxy?.stop();
    await cluster?.stop();
    await redis?.close();
  });

  const logs = async () => `${await proxyLogs(proxy)}\n${nodeLogs(cluster.nodes)}`;

  it(`every client gets exactly 1..${COUNT} across the kill`, async (t) => {
    try {
      await run(t);
    } catch (err) {
      if (!err.message.includes('--- nginx ')) err.message = `${err.message}\n${await logs()}`;
      throw err;
    }
  });

  async function run(t) {

    if (cluster.convergedMs !== undefined) t.diagnostic(`the 3 nodes saw each other (cluster) ${cluster.convergedMs} ms after the last one started`);
    // The fixture: round robin over the 3 nodes.
    const names = [];
    for (let i = 0; i < 6; i++) names.push(await getNodeName(proxy.url));
    assert.equal(new Set(names).size, 3, `round robin over 3 nodes: ${names.join(' ')}`);

    // Clients through nginx, all in room "stream".
    const sockets = [];
    for (const [kind, n] of CLIENT_MIX) sockets.push(...(await openConnected(clients, kind, proxy.url, n)));
    const got = new Map(sockets.map((s) => [s, []]));
    for (const s of sockets) s.on('n', (n) => got.get(s).push(n));
    for (const s of sockets) await ack(s, 'join', ['stream']);

    const perNode = {};
    for (const s of sockets) perNode[s.node] = (perNode[s.node] ?? 0) + 1;
    t.diagnostic(`clients per node before the kill: ${JSON.stringify(perNode)}`);

    // The streamer is on a node that survives; the victim is another node holding clients.
    const survivor = cluster.nodes[0];
    const victim = cluster.nodes.slice(1).sort((x, y) => (perNode[y.name] ?? 0) - (perNode[x.name] ?? 0))[0];
    assert.ok((perNode[victim.name] ?? 0) > 0, `no client landed on ${victim.name}: ${JSON.stringify(perNode)}`);
    const onVictim = sockets.filter((s) => s.node === victim.name);
    const streamer = clients.open('official-websocket', survivor.url);
    await connected(streamer);
    await whoami(streamer);
    assert.equal(streamer.node, survivor.name);
    await sleep(300);

    const streamDone = ack(streamer, 'stream', ['stream', COUNT, INTERVAL_MS], 60_000);
    await sleep(KILL_AFTER_MS);
    const before = onVictim.map((s) => got.get(s).length);
    await victim.kill();
    t.diagnostic(`SIGKILLed node ${victim.name} holding ${onVictim.length} clients (they had ${Math.min(...before)}..${Math.max(...before)} numbers)`);

    const done = await streamDone;
    assert.deepEqual(done, { node: survivor.name, sent: COUNT });
    // Everyone catches up (the reconnected ones through recovery), bounded.
    await waitUntil(() => sockets.every((s) => got.get(s).length >= COUNT), 20_000, () => 'all clients at 600').catch(() => {});
    await sleep(500);

    const report = {};
    const failures = [];
    for (const s of sockets) {
      const seq = describeSequence(got.get(s), COUNT);
      const dropped = s.lifecycle.some((e) => e.type === 'disconnect');
      const r = (report[s.kind] ??= { clients: 0, complete: 0, onVictim: 0, reconnected: 0, recovered: 0, connected: 0 });
      r.clients++;
      if (seq.ok) r.complete++;
      if (onVictim.includes(s)) r.onVictim++;
      if (dropped) r.reconnected++;
      if (s.recovered) r.recovered++;
      if (s.connected) r.connected++;
      if (!seq.ok) failures.push(`${s.label} (was on ${s.node}${dropped ? ', reconnected' : ''}, recovered=${s.recovered}, connected=${s.connected}): ${seq.text}; events: ${describeLifecycle(s)}`);
    }
    for (const [kind, r] of Object.entries(report)) {
      const line = `${kind}: ${r.complete}/${r.clients} got exactly 1..${COUNT}; ${r.onVictim} were on the killed node, ${r.reconnected} reconnected, ${r.recovered} recovered, ${r.connected} connected at the end`;
      t.diagnostic(line);
      console.log(`# failover ${line}`);
    }
    assert.deepEqual(failures, [], `clients with gaps or duplicates:\n${failures.join('\n')}\n${await logs()}`);
    // The victim's clients really went through a reconnection and recovered their session.
    for (const s of onVictim) {
      assert.ok(s.lifecycle.some((e) => e.type === 'disconnect'), `${s.label} was on the killed node but never disconnected`);
      assert.ok(s.connected, `${s.label} did not reconnect`);
      assert.equal(s.recovered, true, `${s.label} reconnected without recovering its session`);
      assert.notEqual((await whoami(s)).node, victim.name);
    }
  }
});
