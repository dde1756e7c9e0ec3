// Shared helpers for the interop tests: start a tidewire example server, wait
// for things with deadlines, and compare message lists with readable failures.
//
// This file is not a test file (node --test only picks `*.test.mjs` here).

import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServer as startBinary } from '../lib/server.mjs';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Same rule as cargo: CARGO_TARGET_DIR (relative to the current directory) or <repo>/target.
export const TARGET_DIR = path.resolve(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target'));

/** Path of a debug binary built by `cargo build --workspace --all-targets`. */
export function debugBinary(name) {
  return path.join(TARGET_DIR, 'debug', name);
}

/**
 * Spawns `bin` with PORT=0 (any free port) plus `env`, waits for its
 * `listening on http://HOST:PORT` line and returns { url, stop, logs }.
 */
export function startServer(bin, env = {}, opts = {}) {
  return startBinary(bin, env, { logsEnv: 'INTEROP_SERVER_LOGS', ...opts });
}

export { nextEvent, sleep, waitUntil } from '../lib/wait.mjs';

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
