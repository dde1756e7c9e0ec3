// Helpers for the integration tests (outside test/ so `node --test` does not run it
// as a test file): start a tidewire example server binary, wait
// with deadlines. Not a test file.
//
// Binaries come from TIDEWIRE_BIN_DIR (default: $CARGO_TARGET_DIR/debug, else
// <repo>/target/debug, i.e. ../target/debug relative to client-js/). Build them with
// `cargo build -p tidewire-examples`.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServer as startBinary } from '../../tests/lib/server.mjs';

export const CLIENT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(CLIENT_ROOT, '..');

export const BIN_DIR = path.resolve(
  process.env.TIDEWIRE_BIN_DIR ??
    (process.env.CARGO_TARGET_DIR
      ? path.join(path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR), 'debug')
      : path.join(REPO_ROOT, 'target', 'debug')),
);

/** Path of the example binary `name`; throws a clear error when it is not built. */
export function binary(name) {
  const bin = path.join(BIN_DIR, name);
  if (!existsSync(bin)) {
    throw new Error(
      `server binary not found: ${bin}\n` +
        'build it with `cargo build -p tidewire-examples` (or set TIDEWIRE_BIN_DIR to the directory holding it)',
    );
  }
  return bin;
}

/**
 * Starts `name` with PORT (default 0: any free port) and `env`; resolves with
 * { url, port, stop, kill, logs } once it printed `listening on http://HOST:PORT`.
 */
export function startServer(name, env = {}, opts = {}) {
  return startBinary(binary(name), env, { logsEnv: 'TIDEWIRE_SERVER_LOGS', ...opts });
}

export { nextEvent, sleep, waitUntil } from '../../tests/lib/wait.mjs';

/** Whether the server at `url` speaks tidewire's SSE transport (else: 'Transport unknown'). */
export async function serverHasSse(url) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 3000);
  try {
    const res = await fetch(`${url}/socket.io/?EIO=4&transport=sse`, {
      headers: { Accept: 'text/event-stream' },
      signal: ac.signal,
    });
    const ok = res.ok && (res.headers.get('content-type') ?? '').startsWith('text/event-stream');
    ac.abort();
    return ok;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export const bytesOf = (data) => Array.from(new Uint8Array(data instanceof ArrayBuffer ? data : data.buffer));
