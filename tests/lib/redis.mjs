// A real Redis (Debian's redis-server) for a Node test suite: its own port on
// 127.0.0.1, its own empty directory, no persistence, killed when the test
// process exits. Only Node built-ins and tests/nginx/nginx.mjs (RESP is spoken over
// node:net), so every suite can import it whatever its own packages.
//
//   const redis = await startRedis();
//   redis.url            // redis://127.0.0.1:<port>/
//   await redis.ping();  // 'PONG' (rejects when nothing answers)
//   await redis.stop();  // SIGTERM, waits for the exit: connections are refused
//   await redis.start(); // again, same port, same directory
//   await redis.close(); // stop() and remove the directory

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../nginx/nginx.mjs';

export const REDIS_BIN =
  process.env.REDIS_SERVER_BIN || ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p)) || 'redis-server';

// redis-servers still running when this process exits are killed.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});


/** Encodes a command as a RESP array of bulk strings. */
function encodeCommand(args) {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const s = String(arg);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/**
 * Parses one RESP reply at `offset` of `buf`; returns { value, end } or null
 * when the buffer does not hold a whole reply yet. Errors become Error values.
 */
function parseReply(buf, offset = 0) {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return null;
  const type = String.fromCharCode(buf[offset]);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at);
        if (!item) return null;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

/**
 * Sends one command to the Redis at 127.0.0.1:port on a fresh connection and
 * resolves with its reply (an error reply rejects); rejects when the connection
 * is refused or nothing answers within timeoutMs.
 */
export function redisCommand(port, args, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(`redis on port ${port}: no reply to ${args[0]} within ${timeoutMs} ms`)), timeoutMs);
    sock.once('connect', () => sock.write(encodeCommand(args)));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let reply;
      try {
        reply = parseReply(buf);
      } catch (err) {
        finish(err);
        return;
      }
      if (!reply) return;
      if (reply.value instanceof Error) finish(new Error(`redis on port ${port}: ${args[0]} -> ${reply.value.message}`));
      else finish(null, reply.value);
    });
    sock.once('error', (err) => finish(new Error(`redis on port ${port}: ${err.code ?? err.message}`)));
    sock.once('close', () => finish(new Error(`redis on port ${port}: connection closed before a reply to ${args[0]}`)));
  });
}

/**
 * Starts redis-server on a free port (or `port`) with a fresh temp directory,
 * resolves once it answers PING. Returns
 * { url, port, dir, ping(), command(args), stop(), start(), close(), running(), logs() }.
 */
export async function startRedis({ port, startTimeoutMs = 10_000 } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tidewire-redis-'));
  let child = null;
  let exited = Promise.resolve({ code: null, signal: null });
  let output = '';

  const isRunning = () => child !== null && child.exitCode === null && child.signalCode === null;

  async function spawnOn(p) {
    const args = [
      '--port', String(p),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', dir,
      '--protected-mode', 'no',
      '--daemonize', 'no',
      '--logfile', '',
    ];
    const proc = spawn(REDIS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    running.add(proc);
    const keep = (c) => {
      output = (output + c).slice(-16_384);
      if (process.env.REDIS_LOGS) process.stderr.write(c);
    };
    proc.stdout.setEncoding('utf8').on('data', keep);
    proc.stderr.setEncoding('utf8').on('data', keep);
    exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        running.delete(proc);
        resolve({ code, signal });
      });
      proc.once('error', (err) => {
        running.delete(proc);
        keep(`\ncould not start ${REDIS_BIN}: ${err.message}\n`);
        resolve({ code: null, signal: null });
      });
    });
    const deadline = Date.now() + startTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const reply = await redisCommand(p, ['PING'], 500);
        if (reply === 'PONG') return;
      } catch (err) {
        if (proc.exitCode !== null || proc.signalCode !== null || !running.has(proc)) {
          throw new Error(`redis-server on port ${p} exited before answering PING:\n${output}`);
        }
        if (Date.now() > deadline || attempt > 1000) {
          proc.kill('SIGKILL');
          await exited;
          throw new Error(`redis-server on port ${p} did not answer PING within ${startTimeoutMs} ms (${err.message}):\n${output}`);
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  // The free port could be taken between freePort() and redis's bind: retry.
  let chosen = port;
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const p = chosen ?? (await freePort());
    try {
      await spawnOn(p);
      chosen = p;
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err;
      if (port) break;
    }
  }
  if (lastError) {
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }
  const fixedPort = chosen;

  async function stop() {
    if (!isRunning()) return exited;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    const result = await exited;
    clearTimeout(killer);
    return result;
  }

  return {
    url: `redis://127.0.0.1:${fixedPort}/`,
    port: fixedPort,
    dir,
    /** Resolves with 'PONG'; rejects when redis does not answer (stopped: ECONNREFUSED). */
    ping: (timeoutMs = 1000) => redisCommand(fixedPort, ['PING'], timeoutMs),
    /** Any command, e.g. ['PUBSUB', 'CHANNELS', '*']. */
    command: (args, timeoutMs = 1000) => redisCommand(fixedPort, args, timeoutMs),
    running: isRunning,
    /** What redis-server printed (tail). */
    logs: () => output,
    /** SIGTERM (SIGKILL after 5 s) and wait for the exit. */
    stop,
    /** Starts it again on the same port with the same directory; resolves once it answers PING. */
    async start() {
      if (isRunning()) return;
      await spawnOn(fixedPort);
    },
    /** stop() and remove the directory. */
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
