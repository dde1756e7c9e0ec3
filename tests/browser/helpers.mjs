// Helpers for the browser end-to-end tests: the chat server, Debian's chromium
// through playwright-core, the chat page's actions, raw HTTP probes.
//
// Not a test file (node --test only picks `*.test.mjs`).

import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { startServer } from '../lib/server.mjs';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// Same rule as cargo: CARGO_TARGET_DIR (relative to the current directory) or <repo>/target.
export const TARGET_DIR = path.resolve(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target'));
export const CHAT_BIN = process.env.CHAT_BIN || path.join(TARGET_DIR, 'debug', 'chat');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const SCREENSHOTS = path.join(TARGET_DIR, 'screenshots');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts the chat example on `port` (0: a free one), waits for its
 * `listening on http://HOST:PORT` line; returns { url, port, logs(), stop(signal) }.
 * stop() sends SIGTERM: no graceful shutdown, the connections just drop.
 */
export function startChat({ port = 0, startTimeoutMs = 15_000 } = {}) {
  return startServer(CHAT_BIN, { PORT: String(port) }, {
    startTimeoutMs,
    logsEnv: 'E2E_SERVER_LOGS',
    hint: 'build it with `cargo build -p tidewire-examples --bin chat`',
  });
}

/**
 * Launches Debian's chromium (never a downloaded browser) with a fresh profile;
 * returns a persistent context (one browser = one user) whose close() also
 * removes the profile.
 */
export async function launchBrowser() {
  const profile = await mkdtemp(path.join(os.tmpdir(), 'tidewire-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1000, height: 700 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  const close = context.close.bind(context);
  context.close = async () => {
    await close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  };
  return context;
}

/**
 * Opens the chat page of `baseUrl` as `nick` in `context` (a page of its own)
 * and waits until it is connected. Console errors and page errors are kept in
 * page.problems for failure messages.
 */
export async function openChat(context, baseUrl, nick) {
  const page = context.pages().find((p) => p.url() === 'about:blank') ?? (await context.newPage());
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') page.problems.push(`console.${msg.type()}: ${msg.text()}`);
  });
  // Development aid: TIDEWIRE_JS=<file> serves that client bundle instead of the server's.
  if (process.env.TIDEWIRE_JS) {
    const body = await readFile(process.env.TIDEWIRE_JS, 'utf8');
    await page.route('**/socket.io/tidewire.js', (route) => route.fulfill({ contentType: 'text/javascript', body }));
  }
  await page.goto(`${baseUrl}/?nick=${encodeURIComponent(nick)}`, { waitUntil: 'load' });
  await waitConnected(page, nick);
  return page;
}

/** Waits until the page shows "connected" and its welcome (nick set). */
export async function waitConnected(page, nick, timeout = 20_000) {
  try {
    await page.waitForFunction(
      (nick) => document.body.dataset.state === 'connected' && document.body.dataset.nick === nick,
      nick,
      { timeout },
    );
  } catch (err) {
    throw new Error(`${nick}'s page did not connect: ${await describe(page)}\n${err.message}`);
  }
}

/** The transport the page shows: { name, reason }. */
export async function shownTransport(page) {
  return page.evaluate(() => ({
    name: document.getElementById('transport').dataset.name,
    reason: document.getElementById('transport-reason').textContent,
  }));
}

/** Waits until the page shows `name` as its transport. */
export async function waitTransport(page, name, timeout = 20_000) {
  try {
    await page.waitForFunction((name) => document.getElementById('transport').dataset.name === name, name, { timeout });
  } catch (err) {
    throw new Error(`expected transport ${name}: ${await describe(page)}\n${err.message}`);
  }
}

/** The page's state for failure messages. */
export async function describe(page) {
  const state = await page
    .evaluate(() => ({
      state: document.getElementById('state').textContent,
      transport: document.getElementById('transport').textContent,
      nick: document.body.dataset.nick,
      messages: [...document.querySelectorAll('#messages li')].map((li) => li.textContent),
    }))
    .catch((err) => ({ error: err.message }));
  return JSON.stringify({ ...state, problems: page.problems ?? [] });
}

/**
 * `from` types and sends `text`; checks every step a user would see: `to`
 * sees "<from> is typing…", then the message; `from` sees its tick turn
 * into "delivered" (the ack).
 */
export async function sendAndCheck(from, fromNick, to, text, { timeout = 15_000 } = {}) {
  await from.locator('#text').pressSequentially(text.slice(0, 3));
  try {
    await to.locator('#typing', { hasText: `${fromNick} is typing` }).waitFor({ timeout });
  } catch (err) {
    throw new Error(`no typing indicator for ${fromNick}: ${await describe(to)}\n${err.message}`);
  }
  await from.locator('#text').fill(text);
  await from.locator('#text').press('Enter');
  const mine = from.locator('#messages li.msg.mine', { hasText: text });
  try {
    await mine.locator('.tick[data-delivered="true"]').waitFor({ timeout });
  } catch (err) {
    throw new Error(`"${text}" was not acked on ${fromNick}'s page: ${await describe(from)}\n${err.message}`);
  }
  try {
    await to.locator('#messages li.msg:not(.mine)', { hasText: text }).waitFor({ timeout });
  } catch (err) {
    throw new Error(`"${text}" from ${fromNick} never arrived: ${await describe(to)}\n${err.message}`);
  }
  // Sending clears the typing indicator on the other side.
  await to.locator('#typing', { hasText: `${fromNick} is typing` }).waitFor({ state: 'detached', timeout: 5_000 }).catch(() => {});
}

/** Saves a screenshot of `page` as <target>/screenshots/<name>.png; returns its path. */
export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** Copies a screenshot to docs/ (the README shows it). */
export async function publishScreenshot(file, name) {
  // Opt-in, so an ordinary test run leaves the tracked docs/ untouched.
  if (process.env.UPDATE_DOCS_SCREENSHOT !== '1') return;
  await copyFile(file, path.join(REPO_ROOT, 'docs', name));
}

/**
 * A raw HTTP GET to 127.0.0.1: resolves after `windowMs` (or once `until(body)`
 * holds) with { status, headersAfterMs, firstByteAfterMs, body, upgraded }.
 * The request is then aborted (streams never end by themselves).
 */
export function probe(url, { headers = {}, windowMs = 3_000, until = () => false } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const result = { status: null, headersAfterMs: null, firstByteAfterMs: null, body: '', upgraded: false };
    let timer;
    const finish = () => {
      clearTimeout(timer);
      req.destroy();
      resolve(result);
    };
    const req = http.get(url, { headers, agent: false }, (res) => {
      result.status = res.statusCode;
      result.headersAfterMs = Date.now() - started;
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        if (result.firstByteAfterMs === null) result.firstByteAfterMs = Date.now() - started;
        result.body += chunk;
        if (until(result.body)) finish();
      });
      res.on('end', finish);
      res.on('error', () => {});
    });
    req.on('upgrade', (res, socket) => {
      result.status = res.statusCode;
      result.upgraded = true;
      socket.destroy();
      finish();
    });
    req.on('error', (err) => {
      if (result.status === null) {
        clearTimeout(timer);
        reject(err);
      }
    });
    timer = setTimeout(finish, windowMs);
  });
}
