// Browser end-to-end tests of the chat example (examples/chat): Debian's
// chromium driven by playwright-core, two users (two browsers, fresh profiles)
// chatting both ways in four situations:
//
//   1. direct: WebSocket;
//   2. behind a real nginx that refuses WebSocket upgrades: SSE;
//   3. behind a real nginx that also buffers responses and ignores
//      X-Accel-Buffering: long-polling;
//   4. the server restarts mid-session: the pages reconnect by themselves.
//
// The nginx fixtures (tests/nginx) are proven first: a proxy that did not do
// what it claims would make scenarios 2 and 3 prove nothing.
// Screenshots: <CARGO_TARGET_DIR or target>/screenshots/<scenario>.png; the
// with UPDATE_DOCS_SCREENSHOT=1 the direct one is also copied to docs/chat.png
// for the README.
//
// Run by hand (from the repo root):
//   cargo build -p tidewire-examples --bin chat
//   (cd tests/browser && npm ci)
//   node --test tests/browser/
// Needs /usr/bin/chromium and /usr/sbin/nginx (apt-get install chromium nginx).
// Variables: CARGO_TARGET_DIR, CHAT_BIN, CHROMIUM_BIN, NGINX_BIN,
// E2E_SERVER_LOGS=1 (show the chat server's logs), KEEP_NGINX_PREFIX=1.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startNginx } from '../nginx/nginx.mjs';
import {
  describe as describePage,
  launchBrowser,
  openChat,
  probe,
  publishScreenshot,
  screenshot,
  sendAndCheck,
  shownTransport,
  startChat,
  waitConnected,
  waitTransport,
} from './helpers.mjs';

const HOOK = { timeout: 60_000 };
const TEST = { timeout: 120_000 };

const SSE = '/socket.io/?EIO=4&transport=sse';
const POLLING = '/socket.io/?EIO=4&transport=polling';
const WEBSOCKET = '/socket.io/?EIO=4&transport=websocket';
const SSE_HEADERS = { Accept: 'text/event-stream' };
const WS_HEADERS = {
  Connection: 'Upgrade',
  Upgrade: 'websocket',
  'Sec-WebSocket-Version': '13',
  'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
};
/** The SSE event carrying the Engine.IO open packet. */
const hasOpenPacket = (body) => /^data: 0\{"/m.test(body);

describe('nginx fixtures (tests/nginx) do what they claim', () => {
  let chat;
  let noUpgrade;
  let buffering;
  before(async () => {
    chat = await startChat();
    noUpgrade = await startNginx('no-upgrade', chat.port);
    buffering = await startNginx('buffering', chat.port);
  }, HOOK);
  after(async () => {
    await noUpgrade?.stop();
    await buffering?.stop();
    await chat?.stop();
  }, HOOK);

  test('direct: the WebSocket handshake succeeds and SSE delivers the open packet at once', async () => {
    const ws = await probe(chat.url + WEBSOCKET, { headers: WS_HEADERS, windowMs: 3_000 });
    assert.equal(ws.status, 101, 'direct WebSocket handshake');
    assert.ok(ws.upgraded);
    const sse = await probe(chat.url + SSE, { headers: SSE_HEADERS, windowMs: 3_000, until: hasOpenPacket });
    assert.equal(sse.status, 200);
    assert.ok(hasOpenPacket(sse.body), `no open packet directly: ${JSON.stringify(sse)}`);
    assert.ok(sse.firstByteAfterMs < 1_000, `open packet after ${sse.firstByteAfterMs} ms`);
  });

  for (const name of ['no-upgrade', 'buffering']) {
    test(`${name}: a WebSocket handshake through it is refused (not 101)`, async () => {
      const proxy = name === 'no-upgrade' ? noUpgrade : buffering;
      const ws = await probe(proxy.url + WEBSOCKET, { headers: WS_HEADERS, windowMs: 3_000 });
      assert.equal(ws.upgraded, false, `upgraded through ${name}`);
      assert.notEqual(ws.status, 101);
      assert.equal(ws.status, 403, `${name} answers the upgrade with ${ws.status}`);
    });
  }

  test('no-upgrade: an SSE stream passes through promptly', async () => {
    const sse = await probe(noUpgrade.url + SSE, { headers: SSE_HEADERS, windowMs: 3_000, until: hasOpenPacket });
    assert.equal(sse.status, 200);
    assert.ok(hasOpenPacket(sse.body), `no open packet through no-upgrade in 3 s: ${JSON.stringify(sse)}`);
    assert.ok(sse.firstByteAfterMs < 1_000, `open packet after ${sse.firstByteAfterMs} ms`);
  });

  test('buffering: an SSE stream shows nothing for 3 s (the same request direct does at once)', async () => {
    const [through, direct] = await Promise.all([
      probe(buffering.url + SSE, { headers: SSE_HEADERS, windowMs: 3_000 }),
      probe(chat.url + SSE, { headers: SSE_HEADERS, windowMs: 3_000, until: hasOpenPacket }),
    ]);
    assert.ok(hasOpenPacket(direct.body) && direct.firstByteAfterMs < 1_000, `direct: ${JSON.stringify(direct)}`);
    assert.equal(through.body, '', `bytes came through the buffering proxy: ${JSON.stringify(through)}`);
    assert.equal(through.firstByteAfterMs, null);
  });

  test('buffering: a complete response (the long-polling handshake) gets through', async () => {
    const poll = await probe(buffering.url + POLLING, { windowMs: 3_000, until: (b) => b.startsWith('0{') });
    assert.equal(poll.status, 200);
    assert.match(poll.body, /^0\{"sid":|^0\{.*"sid":/);
  });
});

/**
 * One scenario: a chat server (and maybe a proxy), two browsers, alice and bob.
 * `setup()` returns { base, stop } for what serves the page. The test itself
 * opens the pages (`await s.open()`), so a page that cannot connect fails the
 * test (and counts as a failure) rather than a hook.
 */
function twoUsers(setup) {
  const s = { alice: null, bob: null, browsers: [], served: null };
  before(async () => {
    s.served = await setup();
    s.browsers = await Promise.all([launchBrowser(), launchBrowser()]);
  }, HOOK);
  s.open = async () => {
    s.alice = await openChat(s.browsers[0], s.served.base, 'alice');
    s.bob = await openChat(s.browsers[1], s.served.base, 'bob');
  };
  after(async () => {
    for (const b of s.browsers) await b.close();
    await s.served?.stop();
  }, HOOK);
  return s;
}

/** Alice and bob chat both ways (typing indicator, message, delivered tick). */
async function chatBothWays(s, tag) {
  await sendAndCheck(s.alice, 'alice', s.bob, `hello bob, alice here (${tag})`);
  await sendAndCheck(s.bob, 'bob', s.alice, `hi alice! bob here (${tag})`);
  await sendAndCheck(s.alice, 'alice', s.bob, `ticks mean the server has it (${tag})`);
}

/** Leaves bob typing so alice's screenshot shows the indicator, then takes it. */
async function screenshotAlice(s, name) {
  await s.bob.locator('#text').pressSequentially('so');
  await s.alice.locator('#typing', { hasText: 'bob is typing' }).waitFor({ timeout: 5_000 }).catch(() => {});
  return screenshot(s.alice, name);
}

describe('1. direct: WebSocket', () => {
  let chat;
  const s = twoUsers(async () => {
    chat = await startChat();
    return { base: chat.url, stop: () => chat.stop() };
  });

  test('both pages connect over WebSocket and chat both ways', async () => {
    await s.open();
    for (const page of [s.alice, s.bob]) await waitTransport(page, 'websocket');
    await chatBothWays(s, 'websocket');
    const file = await screenshotAlice(s, 'direct');
    await publishScreenshot(file, 'chat.png');
    assert.equal((await shownTransport(s.alice)).name, 'websocket');
  }, TEST);

  test('rooms: messages stay in their room; joins and leaves are announced', async () => {
    const notice = (page, text) => page.locator('#messages li.notice', { hasText: text }).last().waitFor();
    await s.bob.locator('#rooms button[data-room="rust"]').click();
    await s.bob.locator('#room', { hasText: 'rust' }).waitFor();
    await notice(s.alice, 'bob left');

    await s.alice.locator('#text').fill('only the lobby hears this');
    await s.alice.locator('#text').press('Enter');
    await s.alice.locator('li.msg.mine', { hasText: 'only the lobby' }).locator('.tick[data-delivered="true"]').waitFor();
    // The ack came after the server broadcast it: give the broadcast a moment anyway.
    await s.bob.waitForTimeout(300);
    assert.equal(await s.bob.locator('li.msg', { hasText: 'only the lobby' }).count(), 0, 'bob (in #rust) got a #lobby message');

    await s.bob.locator('#rooms button[data-room="lobby"]').click();
    await s.bob.locator('#room', { hasText: 'lobby' }).waitFor();
    await notice(s.alice, 'bob joined');
    await sendAndCheck(s.bob, 'bob', s.alice, 'back in the lobby');

    // Closing the page is leaving too (announced from the server's disconnect handler).
    await s.bob.close();
    await s.alice.locator('#messages li.notice', { hasText: 'bob left' }).nth(1).waitFor();
  }, TEST);
});

describe('2. behind nginx refusing WebSocket upgrades: SSE', () => {
  let chat;
  let proxy;
  const s = twoUsers(async () => {
    chat = await startChat();
    proxy = await startNginx('no-upgrade', chat.port);
    return {
      base: proxy.url,
      stop: async () => {
        await proxy.stop();
        await chat.stop();
      },
    };
  });

  test('both pages fall back to SSE and chat both ways', async () => {
    await s.open();
    for (const page of [s.alice, s.bob]) await waitTransport(page, 'sse');
    const shown = await shownTransport(s.alice);
    assert.match(shown.reason, /websocket/i, `the page should say why it is not on WebSocket: ${shown.reason}`);
    await chatBothWays(s, 'sse');
    await screenshotAlice(s, 'no-upgrade-sse');
    for (const page of [s.alice, s.bob]) assert.equal((await shownTransport(page)).name, 'sse');
  }, TEST);
});

describe('3. behind nginx refusing upgrades and buffering responses: long-polling', () => {
  let chat;
  let proxy;
  const s = twoUsers(async () => {
    chat = await startChat();
    proxy = await startNginx('buffering', chat.port);
    return {
      base: proxy.url,
      stop: async () => {
        await proxy.stop();
        await chat.stop();
      },
    };
  });

  test('both pages fall back to long-polling and chat both ways', async () => {
    await s.open();
    for (const page of [s.alice, s.bob]) await waitTransport(page, 'polling', 30_000);
    const shown = await shownTransport(s.alice);
    assert.match(shown.reason, /sse/i, `the page should say why it is not on SSE: ${shown.reason}`);
    await chatBothWays(s, 'polling');
    await screenshotAlice(s, 'buffering-polling');
    for (const page of [s.alice, s.bob]) assert.equal((await shownTransport(page)).name, 'polling');
  }, TEST);
});

describe('4. the server restarts mid-session', () => {
  let chat;
  const s = twoUsers(async () => {
    chat = await startChat();
    return { base: chat.url, stop: () => chat.stop() };
  });

  test('the pages reconnect by themselves and the chat goes on', async () => {
    await s.open();
    for (const page of [s.alice, s.bob]) await waitTransport(page, 'websocket');
    await chatBothWays(s, 'before the restart');

    const port = chat.port;
    await chat.stop('SIGKILL');
    for (const page of [s.alice, s.bob]) {
      await page.waitForFunction(() => document.body.dataset.state !== 'connected', null, { timeout: 15_000 });
    }
    chat = await startChat({ port });

    await waitConnected(s.alice, 'alice', 30_000);
    await waitConnected(s.bob, 'bob', 30_000);
    for (const page of [s.alice, s.bob]) await waitTransport(page, 'websocket');
    for (const page of [s.alice, s.bob]) {
      // The same page (nothing reloaded it): it says so, and the chat so far is still there.
      await page.locator('#messages li.notice', { hasText: 'reconnected' }).waitFor();
      await page.locator('#messages li.msg', { hasText: 'before the restart' }).first().waitFor();
      // Same nicknames and room as before: the pages sent them in the handshake's auth.
      assert.equal(await page.locator('#room').textContent(), 'lobby', await describePage(page));
    }
    await chatBothWays(s, 'after the restart');
    await screenshotAlice(s, 'restart');
  }, TEST);
});
