// Starting a tidewire example server for a Node test suite: the one spawn helper
// shared by tests/interop, tests/browser, tests/faults and client-js/test.
// Only Node built-ins, so every suite can import it whatever its own packages.
//
// A server binary takes HOST and PORT (0: any free port) and prints exactly one
// `listening on http://HOST:PORT` line on stdout once bound.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

// Servers still running when the process exits (a crash, a failed hook) are
// killed so they never outlive the test run.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Spawns `bin` (with `args`) with HOST=127.0.0.1, PORT=0 and `env`; resolves once it listens with
 * { url, port, logs(), stop(signal = 'SIGTERM'), kill() }. stop() escalates to
 * SIGKILL after 5 s; kill() drops every connection at once. Set `logsEnv` (an env
 * var name) to echo the server's stderr when that variable is set.
 */
export async function startServer(bin, env = {}, { args = [], startTimeoutMs = 10_000, logsEnv = 'TIDEWIRE_SERVER_LOGS', hint = '' } = {}) {
  if (!existsSync(bin)) {
    throw new Error(`server binary not found: ${bin}\n${hint || 'build it with `cargo build --workspace --all-targets` (or run `bash scripts/test.sh`)'}`);
  }
  const child = spawn(bin, args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  // Keep the tail of stderr so a failure can show what the server said.
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    if (process.env[logsEnv]) process.stderr.write(chunk);
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
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    url,
    port: Number(new URL(url).port),
    logs: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (!alive()) return exited;
      child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const result = await exited;
      clearTimeout(killer);
      return result;
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      return exited;
    },
  };
}
