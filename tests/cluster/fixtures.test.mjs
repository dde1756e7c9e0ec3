// The fixtures of tests/cluster do what they claim, independently of tidewire
// (3 Node reference nodes, tests/cluster/node-server.mjs, stand behind nginx):
//
//   - tests/lib/redis.mjs: answers PING, refuses connections once stopped,
//     comes back on the same port with the same directory;
//   - cluster-round-robin.conf: spreads requests over every node in turn, and
//     skips a node that is down (proxy_next_upstream) without failing a request;
//   - cluster-sticky.conf: pins every request of 127.0.0.1 to one node.
//
//   node --test tests/cluster/fixtures.test.mjs

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { getNodeName, startCluster, startNginx, startRedis } from './helpers.mjs';

const countBy = (list) => list.reduce((acc, x) => ({ ...acc, [x]: (acc[x] ?? 0) + 1 }), {});

async function names(proxy, times) {
  const out = [];
  for (let i = 0; i < times; i++) out.push(await getNodeName(proxy.url));
  return out;
}

describe('redis fixture (tests/lib/redis.mjs)', () => {
  let redis;
  after(() => redis?.close());

  it('answers PING, refuses connections when stopped, restarts on the same port and directory', async () => {
    redis = await startRedis();
    assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(await redis.ping(), 'PONG');
    assert.equal(await redis.command(['SET', 'k', 'v']), 'OK');
    assert.equal(await redis.command(['CONFIG', 'GET', 'dir']).then((r) => r[1]), redis.dir);
    assert.deepEqual(await redis.command(['CONFIG', 'GET', 'save']), ['save', '']);
    const { port, dir } = redis;
    await redis.stop();
    assert.equal(redis.running(), false);
    await assert.rejects(redis.ping(), /ECONNREFUSED/);
    await redis.start();
    assert.equal(redis.port, port);
    assert.equal(await redis.ping(), 'PONG');
    assert.equal(await redis.command(['CONFIG', 'GET', 'dir']).then((r) => r[1]), dir);
    // No persistence: the restarted Redis starts empty.
    assert.equal(await redis.command(['GET', 'k']), null);
  });
});

describe('nginx cluster fixtures (tests/nginx/cluster-*.conf) over 3 Node nodes', () => {
  let redis;
  let cluster;
  const proxies = [];

  before(async () => {
    redis = await startRedis();
    cluster = await startCluster({ impl: 'node', count: 3, redisUrl: redis.url });
  });

  after(async () => {
    for (const p of proxies) await p.stop();
    await cluster?.stop();
    await redis?.close();
  });

  it('cluster-round-robin: 6 GET /node go to the 3 nodes in turn', async (t) => {
    const proxy = await startNginx('cluster-round-robin', cluster.ports);
    proxies.push(proxy);
    const got = await names(proxy, 6);
    t.diagnostic(`round robin: ${got.join(' ')}`);
    assert.deepEqual(countBy(got), { a: 2, b: 2, c: 2 }, got.join(' '));
    assert.deepEqual(got.slice(3), got.slice(0, 3), `the same order each turn: ${got.join(' ')}`);
  });

  it('cluster-sticky: 6 GET /node all go to one node', async (t) => {
    const proxy = await startNginx('cluster-sticky', cluster.ports);
    proxies.push(proxy);
    const got = await names(proxy, 6);
    t.diagnostic(`ip_hash: ${got.join(' ')}`);
    assert.equal(new Set(got).size, 1, got.join(' '));
  });

  it('cluster-round-robin skips a node that is down: every request still answered, by the 2 others', async (t) => {
    const proxy = proxies[0];
    const victim = cluster.nodes[1];
    await victim.kill();
    const got = await names(proxy, 6);
    t.diagnostic(`with node ${victim.name} down: ${got.join(' ')}`);
    assert.ok(!got.includes(victim.name), got.join(' '));
    assert.equal(new Set(got).size, 2, `both survivors answer: ${got.join(' ')}`);
    assert.match(await proxy.logs(), /Connection refused/, 'nginx tried the dead node and went on');
  });
});
