// Shared helpers for the interop tests: start a tidewire example server, wait
// for things with deadlines, and compare message lists with readable failures.
//
// This file is not a test file (node --test only picks `*.test.mjs` here).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Same rule as cargo: CARGO_TARGET_DIR (relative to the current directory) or <repo>/target.
export const TARGET_DIR = path.resolve(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target'));

/** Path of a debug binary built by `cargo build --workspace --all-targets`. */
export function debugBinary(name) {
  return path.join(TARGET_DIR, 'debug', name);
}

// Servers still running when the process exits (a crash, an unhandled error)
// are killed here so they never outlive the test run.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Spawns `bin` with PORT=0 (any free port) plus `env`, waits for its
 * `listening on http://HOST:PORT` line and returns { url, stop, logs }.
 * stop() sends SIGTERM (SIGKILL after 5 s) and resolves with { code, signal }.
 */
export async function startServer(bin, env = {}, { startTimeoutMs = 10_000 } = {}) {
  if (!existsSync(bin)) {
    throw new Error(
      `server binary not found: ${bin}\n` +
        'build it first with `cargo build --workspace --all-targets` (or run `bash scripts/test.sh`)',
    );
  }
  const child = spawn(bin, [], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);

  // Keep the tail of stderr so a failure can show what the server said.
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (process.env.INTEROP_SERVER_LOGS) process.stderr.write(chunk);
    stderr = (stderr + chunk).slice(-16_384);
  });

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} did not print "listening on http://HOST:PORT" within ${startTimeoutMs} ms; stderr:\n${stderr}`));
    }, startTimeoutMs);
    // Read stdout to the end (not just the first line) so its pipe never fills.
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^listening on (http:\/\/\S+)$/.exec(line.trim());
      if (match) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/$/, ''));
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${bin}: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`));
    });
  });

  return {
    url,
    logs: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        const result = await exited;
        clearTimeout(killer);
        return result;
      }
      return exited;
    },
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms; rejects with `describe()` once `timeoutMs` passed. */
export async function waitUntil(condition, timeoutMs, describe) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(10);
  }
}

/** Resolves with the arguments of the next `event` on `emitter`, or rejects after `timeoutMs`. */
export function nextEvent(emitter, event, timeoutMs, what = `"${event}" event`) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    function onEvent(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, onEvent);
  });
}

/** A message as a comparable value: { text } or { binary: Buffer }. */
export function normalize(data) {
  // engine.io-parser decodes an empty text message (the bare packet `4`) as
  // `undefined`, so that is how the official client hands it over.
  if (data === undefined) return { text: '' };
  if (typeof data === 'string') return { text: data };
  if (data instanceof ArrayBuffer) return { binary: Buffer.from(data) };
  if (ArrayBuffer.isView(data)) return { binary: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
  throw new Error(`unexpected message type: ${Object.prototype.toString.call(data)}`);
}

function describeMessage(m) {
  if (m === undefined) return 'nothing';
  if ('text' in m) {
    const shown = m.text.length > 40 ? `${JSON.stringify(m.text.slice(0, 40))}...` : JSON.stringify(m.text);
    return `text ${shown} (${m.text.length} chars)`;
  }
  const hex = m.binary.subarray(0, 16).toString('hex');
  return `binary <${hex}${m.binary.length > 16 ? '...' : ''}> (${m.binary.length} bytes)`;
}

function sameMessage(a, b) {
  if (a === undefined || b === undefined) return false;
  if ('text' in a) return 'text' in b && a.text === b.text;
  return 'binary' in b && a.binary.equals(b.binary);
}

/** Asserts that `received` (raw data) equals `expected` (raw data), in order, each exactly once. */
export function assertSameMessages(received, expected, label = 'echoed messages') {
  const got = received.map(normalize);
  const want = expected.map(normalize);
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (!sameMessage(got[i], want[i])) {
      throw new Error(
        `${label}: expected ${want.length} messages, got ${got.length}; ` +
          `first difference at #${i}: expected ${describeMessage(want[i])}, got ${describeMessage(got[i])}`,
      );
    }
  }
}
