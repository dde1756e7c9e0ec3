// The chat example as three nodes sharing one Redis (tidewire-redis) behind a
// real nginx that balances round-robin with no stickiness and refuses
// WebSocket upgrades (tests/nginx/cluster-no-upgrade.conf): two users in
// Debian's chromium fall back to SSE, whose stream and POSTs land on any node,
// so most requests are forwarded between nodes. They chat both ways; then two
// of the three nodes are killed (SIGKILL) and the pages, resumed on the last
// node, chat on.
//
// Run by hand (from the repo root):
//   cargo build -p tidewire-examples --bin chat
//   (cd tests/browser && npm ci)
//   node --test tests/browser/cluster.test.mjs
// Needs /usr/bin/chromium, /usr/sbin/nginx and redis-server.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startRedis } from '../lib/redis.mjs';
import { startServer } from '../lib/server.mjs';
import { startNginx } from '../nginx/nginx.mjs';
import { CHAT_BIN, launchBrowser, openChat, probe, screenshot, sendAndCheck, sleep, waitConnected, waitTransport } from './helpers.mjs';

const HOOK = { timeout: 90_000 };
const TEST = { timeout: 150_000 };

describe('chat on three nodes behind round-robin nginx without upgrades', () => {
  let redis;
  const nodes = [];
  let proxy;
  let ada;
  let bob;

  before(async () => {
    redis = await startRedis();
    for (const name of ['one', 'two', 'three']) {
      nodes.push(
        await startServer(CHAT_BIN, { REDIS_URL: redis.url, NODE_NAME: name }, {
          startTimeoutMs: 15_000,
          logsEnv: 'E2E_SERVER_LOGS',
          hint: 'build it with `cargo build -p tidewire-examples --bin chat`',
        }),
      );
    }
    proxy = await startNginx('cluster-no-upgrade', nodes.map((n) => n.port));
    // One heartbeat, so every node has every other one in its table.
    await sleep(2_500);
  }, HOOK);

  after(async () => {
    await ada?.close();
    await bob?.close();
    await proxy?.stop();
    for (const node of nodes) await node.stop('SIGKILL');
    await redis?.close();
  }, HOOK);

  test('the fixture refuses upgrades and spreads requests over the nodes', async () => {
    const ws = await probe(`${proxy.url}/socket.io/?EIO=4&transport=websocket`, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      windowMs: 3_000,
    });
    assert.equal(ws.status, 403, 'the proxy must refuse WebSocket upgrades');
    const upstreams = new Set();
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${proxy.url}/socket.io/?EIO=4&transport=polling`);
      assert.equal(res.status, 200);
      const sid = /"sid":"([^"]+)"/.exec(await res.text())?.[1];
      assert.ok(sid, 'a handshake answer');
      upstreams.add(sid.slice(0, 4)); // a session id starts with its node's tag
    }
    assert.equal(upstreams.size, 3, `6 handshakes through round robin should reach 3 nodes, saw tags ${[...upstreams]}`);
  });

  test('two users chat over SSE with their requests forwarded between nodes', TEST, async () => {
    const adaBrowser = await launchBrowser();
    const bobBrowser = await launchBrowser();
    ada = adaBrowser;
    bob = bobBrowser;
    const adaPage = await openChat(adaBrowser, proxy.url, 'ada');
    const bobPage = await openChat(bobBrowser, proxy.url, 'bob');
    await waitTransport(adaPage, 'sse');
    await waitTransport(bobPage, 'sse');
    await sendAndCheck(adaPage, 'ada', bobPage, 'hello from ada across the cluster');
    await sendAndCheck(bobPage, 'bob', adaPage, 'hello back from bob');
    await screenshot(adaPage, 'cluster-sse');

    // Two of three nodes die: whoever was on them resumes on the last one.
    await nodes[0].stop('SIGKILL');
    await nodes[1].stop('SIGKILL');
    // A page on a dead node notices at once (its stream ends) and reconnects;
    // typing before both are back would only show that a typing indicator is
    // not replayed to someone who was away.
    await sleep(2_000);
    await waitConnected(adaPage, 'ada', 30_000);
    await waitConnected(bobPage, 'bob', 30_000);
    await sendAndCheck(adaPage, 'ada', bobPage, 'still here after two nodes died', { timeout: 30_000 });
    await sendAndCheck(bobPage, 'bob', adaPage, 'me too', { timeout: 30_000 });
    await screenshot(bobPage, 'cluster-after-failover');
    for (const page of [adaPage, bobPage]) {
      assert.deepEqual(
        page.problems.filter((p) => p.startsWith('pageerror')),
        [],
        'no page errors',
      );
    }
  });
});
