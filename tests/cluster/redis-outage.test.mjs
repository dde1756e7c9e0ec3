// Redis goes away and comes back: 3 tidewire nodes, clients connected straight
// to each. While Redis is stopped the nodes stay up and deliver everything local
// (io.local.to(room)); what crosses nodes while Redis is away is counted and
// reported. Once Redis is back (same port) cross-node broadcasts work again
// within 10 s and `cluster` lists the 3 nodes again.
//
//   node --test tests/cluster/redis-outage.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  Clients,
  ack,
  getNodeName,
  nodeLogs,
  openConnected,
  recordEvent,
  sleep,
  startCluster,
  startRedis,
  waitUntil,
} from './helpers.mjs';

// CLUSTER_IMPL=node runs the same against Node nodes (a harness check).
const IMPL = process.env.CLUSTER_IMPL || 'tidewire';
const NAMES = ['a', 'b', 'c'];
const OUTAGE_MS = 3000;
const ROUND_MS = 100;

describe(`${IMPL} nodes while Redis is stopped and after it is back`, { timeout: 90_000 }, () => {
  let redis;
  let cluster;
  const clients = new Clients();
  const on = {};
  let members = [];

  const logs = () => `${nodeLogs(cluster?.nodes ?? [])}\n--- redis ---\n${redis?.logs().slice(-1500) ?? ''}`;

  /** Emits to-room from a client of `name` and resolves true when every member on the other nodes got it within `withinMs`. */
  async function crossWorks(name, tag, withinMs = 700) {
    const rec = recordEvent(members, 'probe');
    try {
      await ack(on[name][0], 'to-room', ['r', 'probe', { tag }], 2000).catch(() => {});
      const want = members.filter((s) => s.node !== name);
      const deadline = Date.now() + withinMs;
      while (Date.now() < deadline && !want.every((s) => rec.got(s).some((p) => p.tag === tag))) await sleep(20);
      return want.every((s) => rec.got(s).some((p) => p.tag === tag));
    } finally {
      rec.stop();
    }
  }

  before(async () => {
    redis = await startRedis();
    cluster = await startCluster({ impl: IMPL, count: 3, redisUrl: redis.url, names: NAMES });
    for (const n of cluster.nodes) {
      on[n.name] = [
        ...(await openConnected(clients, 'official-websocket', n.url, 1)),
        ...(await openConnected(clients, 'bundled-websocket', n.url, 1)),
      ];
    }
    members = Object.values(on).flat();
    for (const s of members) await ack(s, 'join', ['r']);
    await sleep(500);
  });

  after(async () => {
    clients.close();
    await cluster?.stop();
    await redis?.close();
  });

  it('cross-node broadcasts work before the outage (baseline)', async () => {
    for (const name of NAMES) assert.ok(await crossWorks(name, `before-${name}`, 3000), `to-room from ${name} did not reach the other nodes with Redis up\n${logs()}`);
  });

  it(`Redis stopped for ${OUTAGE_MS} ms: nodes stay up, local delivery complete, cross-node losses reported; back within 10 s after restart`, { timeout: 60_000 }, async (t) => {
    const local = recordEvent(members, 'local');
    const cross = recordEvent(members, 'cross');
    await redis.stop();
    // The fixture: a stopped Redis refuses connections.
    await assert.rejects(redis.ping(), /ECONNREFUSED/, 'the stopped Redis refuses connections');

    const sent = { local: [], cross: [] };
    const ackFailures = { local: 0, cross: 0 };
    const nodeDown = [];
    const started = Date.now();
    for (let i = 0; i < Math.ceil(OUTAGE_MS / ROUND_MS) && Date.now() - started < OUTAGE_MS + 2000; i++) {
      const round = [];
      for (const name of NAMES) {
        const sender = on[name][i % 2];
        const lp = { node: name, i };
        const cp = { node: name, i };
        sent.local.push(lp);
        sent.cross.push(cp);
        round.push(ack(sender, 'local-to-room', ['r', 'local', lp], 2000).catch(() => ackFailures.local++));
        round.push(ack(sender, 'to-room', ['r', 'cross', cp], 2000).catch(() => ackFailures.cross++));
      }
      await Promise.all([...round, sleep(ROUND_MS)]);
    }
    // Every node still answers HTTP.
    for (const n of cluster.nodes) {
      try {
        assert.equal(await getNodeName(n.url), n.name);
      } catch (err) {
        nodeDown.push(`${n.name}: ${err.message}`);
      }
    }
    await sleep(500);
    assert.deepEqual(nodeDown, [], `nodes stopped answering GET /node while Redis was down\n${logs()}`);
    assert.ok(members.every((s) => s.connected), `clients were disconnected while Redis was down\n${logs()}`);
    assert.equal(ackFailures.local, 0, `local-to-room acks missing while Redis was down\n${logs()}`);

    // Local delivery: every member got every local-to-room of its own node, once.
    const key = (p) => `${p.node}:${p.i}`;
    let localLost = 0;
    let localDup = 0;
    for (const s of members) {
      const want = sent.local.filter((p) => p.node === s.node).map(key);
      const got = local.got(s).map(key);
      localLost += want.filter((k) => !got.includes(k)).length;
      localDup += got.length - new Set(got).size;
      assert.ok(local.got(s).every((p) => p.node === s.node), `${s.label} on ${s.node} got a local-to-room of another node`);
    }
    // to-room: same-node deliveries and cross-node ones, counted separately.
    let sameLost = 0;
    let crossLost = 0;
    let crossWanted = 0;
    for (const s of members) {
      const got = new Set(cross.got(s).map(key));
      for (const p of sent.cross) {
        if (p.node === s.node) {
          if (!got.has(key(p))) sameLost++;
        } else {
          crossWanted++;
          if (!got.has(key(p))) crossLost++;
        }
      }
    }
    const outage = `while Redis was down: local-to-room ${sent.local.length} sent, ${localLost} lost, ${localDup} duplicated; ` +
      `to-room ${sent.cross.length} sent (${ackFailures.cross} unacked): same-node deliveries lost ${sameLost}, ` +
      `cross-node deliveries lost ${crossLost}/${crossWanted}`;
    t.diagnostic(outage);
    console.log(`# redis-outage ${IMPL}: ${outage}`);
    assert.equal(localLost, 0, `${outage}\n${logs()}`);
    assert.equal(localDup, 0, outage);

    // Back: same port, same directory.
    const crossBefore = members.reduce((n, s) => n + cross.got(s).length, 0);
    await redis.start();
    assert.equal(await redis.ping(), 'PONG');
    const back = Date.now();
    const working = new Set();
    for (let attempt = 0; attempt < 100 && working.size < NAMES.length && Date.now() - back < 10_000; attempt++) {
      for (const name of NAMES) {
        if (!working.has(name) && (await crossWorks(name, `after-${name}-${attempt}`, 500))) working.add(name);
      }
    }
    const recoveredIn = Date.now() - back;
    const late = members.reduce((n, s) => n + cross.got(s).length, 0) - crossBefore;
    local.stop();
    cross.stop();
    const line = `after the restart: cross-node broadcasts from ${[...working].sort().join(',') || 'no node'} work again within ${recoveredIn} ms; ${late} to-room deliveries from the outage arrived late`;
    t.diagnostic(line);
    console.log(`# redis-outage ${IMPL}: ${line}`);
    assert.deepEqual([...working].sort(), NAMES, `${line}\n${logs()}`);

    if (IMPL === 'tidewire') {
      let list = [];
      for (let i = 0; i < 50; i++) {
        list = (await ack(on.a[0], 'cluster', [])).map((e) => e.name).sort();
        if (list.length === 3) break;
        await sleep(200);
      }
      assert.deepEqual(list, NAMES, `cluster after the restart lists the 3 nodes\n${logs()}`);
    }
  });
});
