// Starts a real nginx (Debian's /usr/sbin/nginx) in front of an upstream, from
// one of the config templates beside this file:
//
//   no-upgrade.conf  refuses WebSocket upgrades; streamed responses (SSE) pass
//   buffering.conf   refuses WebSocket upgrades and holds streamed responses back
//   cluster-round-robin.conf  round-robin over several nodes, no stickiness
//   cluster-sticky.conf       the same pinned by client address (ip_hash)
//   cluster-no-upgrade.conf   round-robin that refuses WebSocket upgrades (SSE)
//
// Each nginx gets its own prefix directory (config, pid, logs, temp paths) in a
// fresh temp dir, listens on 127.0.0.1 on a free port, and runs in the
// foreground without a master process (`daemon off; master_process off;`), so
// the child we spawn is nginx itself and killing it stops it.
//
// Used by tests/browser and tests/cluster; not a test file itself.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const NGINX_BIN = process.env.NGINX_BIN || ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) || 'nginx';
export const FIXTURES = ['no-upgrade', 'buffering', 'cluster-round-robin', 'cluster-sticky', 'cluster-no-upgrade'];
// Fixtures over several upstreams: startNginx() takes an array of ports for them.
export const CLUSTER_FIXTURES = ['cluster-round-robin', 'cluster-sticky', 'cluster-no-upgrade'];

// nginx processes still running when this process exits are killed.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects after timeoutMs. */
export async function waitForPort(port, timeoutMs, isAlive = () => true) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!isAlive()) throw new Error(`the process meant to listen on ${port} exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts nginx with fixture `name` proxying to 127.0.0.1:upstreamPort; for the
 * cluster fixtures `upstreamPort` is an array of ports (one upstream server each).
 * Returns { url, port, prefix, logs(), stop() }.
 */
export async function startNginx(name, upstreamPort, { startTimeoutMs = 10_000 } = {}) {
  if (!FIXTURES.includes(name)) throw new Error(`unknown nginx fixture ${name}`);
  const cluster = CLUSTER_FIXTURES.includes(name);
  if (cluster !== Array.isArray(upstreamPort) || (cluster && upstreamPort.length === 0)) {
    throw new Error(`nginx fixture ${name} takes ${cluster ? 'a non-empty array of upstream ports' : 'one upstream port'}`);
  }
  const upstreamServers = cluster
    ? upstreamPort.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n')
    : '';
  const template = await readFile(path.join(HERE, `${name}.conf`), 'utf8');
  const prefix = await mkdtemp(path.join(os.tmpdir(), `tidewire-nginx-${name}-`));
  await mkdir(path.join(prefix, 'tmp'));
  let lastError;
  // The free port could be taken between freePort() and nginx's bind: retry.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const conf = template
      .replaceAll('@PREFIX@', prefix)
      .replaceAll('@LISTEN@', String(port))
      .replaceAll('@UPSTREAM_SERVERS@', upstreamServers)
      .replaceAll('@UPSTREAM@', String(upstreamPort));
    const confPath = path.join(prefix, 'nginx.conf');
    await writeFile(confPath, conf);
    const child = spawn(NGINX_BIN, ['-p', prefix, '-c', confPath, '-e', path.join(prefix, 'error.log')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (output = (output + c).slice(-8192)));
    child.stderr.setEncoding('utf8').on('data', (c) => (output = (output + c).slice(-8192)));
    const exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        running.delete(child);
        output += `\n${err.message}`;
        resolve({ code: null, signal: null });
      });
    });
    const alive = () => child.exitCode === null && child.signalCode === null && running.has(child);
    const errorLog = async () => readFile(path.join(prefix, 'error.log'), 'utf8').catch(() => '');
    try {
      await waitForPort(port, startTimeoutMs, alive);
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      lastError = new Error(`nginx (${name}) did not start: ${err.message}\n${output}\n${await errorLog()}`);
      continue;
    }
    return {
      name,
      port,
      prefix,
      url: `http://127.0.0.1:${port}`,
      /** nginx's error log and what it printed. */
      logs: async () => `${output}${await errorLog()}`,
      async stop() {
        if (alive()) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 3_000);
          await exited;
          clearTimeout(killer);
        }
        await exited;
        if (!process.env.KEEP_NGINX_PREFIX) await rm(prefix, { recursive: true, force: true });
      },
    };
  }
  await rm(prefix, { recursive: true, force: true });
  throw lastError;
}
