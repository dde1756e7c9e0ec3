// Helpers for the multi-node tests: start a cluster of nodes (tidewire's
// `cluster-node` or the Node reference `node-server.mjs`) sharing one Redis,
// connect clients of every kind, await events and acks with deadlines, and
// build failure messages that show what the nodes logged.
//
// Not a test file (node --test only picks `*.test.mjs`).

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { io as officialIo } from 'socket.io-client';
import { WebSocket } from 'ws';

import { startServer } from '../lib/server.mjs';
import { sleep } from '../lib/wait.mjs';
import { io as bundledIo, TransportMemory } from '../../client-js/dist/tidewire.mjs';

export { sleep, waitUntil } from '../lib/wait.mjs';
export { startRedis } from '../lib/redis.mjs';
export { startNginx } from '../nginx/nginx.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
// Same rule as cargo: CARGO_TARGET_DIR (relative to the current directory) or <repo>/target.
export const TARGET_DIR = path.resolve(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target'));
export const CLUSTER_NODE_BIN = process.env.CLUSTER_NODE_BIN || path.join(TARGET_DIR, 'debug', 'cluster-node');
export const NODE_SERVER = path.join(HERE, 'node-server.mjs');

/** Whether the tidewire `cluster-node` binary is built. */
export const hasTidewire = () => existsSync(CLUSTER_NODE_BIN);
export const TIDEWIRE_MISSING = `tidewire cluster-node not built (${CLUSTER_NODE_BIN}): cargo build --workspace --all-targets`;

// --- nodes --------------------------------------------------------------------

/**
 * Starts one node of `impl` ('tidewire' | 'node') named `name` on a free port.
 * Resolves with { impl, name, url, port, logs(), stop(), kill(), alive }.
 * Node logs are echoed live when TIDEWIRE_SERVER_LOGS is set.
 */
export async function startNode({ impl = 'tidewire', name, redisUrl, env = {} }) {
  const nodeEnv = { REDIS_URL: redisUrl, NODE_NAME: name, ...env };
  const server =
    impl === 'tidewire'
      ? await startServer(CLUSTER_NODE_BIN, { RUST_LOG: process.env.RUST_LOG ?? 'info', ...nodeEnv }, {
          logsEnv: 'TIDEWIRE_SERVER_LOGS',
          startTimeoutMs: 15_000,
          hint: 'build it with `cargo build --workspace --all-targets` (examples/cluster_node)',
        })
      : impl === 'node'
        ? await startServer(process.execPath, nodeEnv, { args: [NODE_SERVER], logsEnv: 'TIDEWIRE_SERVER_LOGS', startTimeoutMs: 15_000 })
        : null;
  if (!server) throw new Error(`unknown node implementation ${impl}`);
  const node = { impl, name, ...server, alive: true };
  const stop = server.stop;
  const kill = server.kill;
  node.stop = async (signal) => {
    node.alive = false;
    return stop(signal);
  };
  node.kill = async () => {
    node.alive = false;
    return kill();
  };
  return node;
}

/**
 * Starts `count` nodes of `impl` named a, b, c... (or `names`) on one Redis.
 * For tidewire, then waits until every node's `cluster` lists them all
 * (`waitForMembership: false` skips that; `convergedMs` says how long it took).
 * Resolves with { nodes, byName, urls, ports, logs(), stop(), convergedMs }.
 */
export async function startCluster({ impl = 'tidewire', count = 3, redisUrl, env = {}, names, waitForMembership = true } = {}) {
  const labels = names ?? Array.from({ length: count }, (_, i) => String.fromCharCode(97 + i));
  const nodes = [];
  try {
    // One after the other: a 2-core machine, and clearer errors.
    for (const name of labels) nodes.push(await startNode({ impl, name, redisUrl, env }));
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const cluster = clusterOf(nodes);
  if (impl === 'tidewire' && waitForMembership) {
    try {
      cluster.convergedMs = await waitForMembers(nodes, labels);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }
  return cluster;
}

/**
 * Waits until every tidewire node's `cluster` lists all `names` (the nodes know
 * each other, so a request for a session of another node can be forwarded);
 * resolves with how long that took. Asked over a direct WebSocket per node.
 */
export async function waitForMembers(nodes, names, timeoutMs = 15_000) {
  const started = Date.now();
  const want = [...names].sort();
  const probes = nodes.map((n) => officialClient(n.url, { transports: ['websocket'] }));
  const seen = new Map();
  try {
    for (let round = 0; round < 200 && Date.now() - started < timeoutMs; round++) {
      const views = await Promise.all(
        probes.map((p) => p.timeout(1000).emitWithAck('cluster').then((list) => list.map((e) => e.name).sort(), () => null)),
      );
      views.forEach((v, i) => seen.set(nodes[i].name, v));
      if (views.every((v) => v && v.length === want.length && v.every((x, i) => x === want[i]))) return Date.now() - started;
      await sleep(100);
    }
  } finally {
    for (const p of probes) p.disconnect();
  }
  throw new Error(`the nodes did not all see each other within ${timeoutMs} ms: ${JSON.stringify(Object.fromEntries(seen))}\n${nodeLogs(nodes)}`);
}

/** A cluster object over already started nodes (e.g. tidewire nodes plus a Node one). */
export function clusterOf(nodes) {
  return {
    nodes,
    byName: Object.fromEntries(nodes.map((n) => [n.name, n])),
    urls: nodes.map((n) => n.url),
    ports: nodes.map((n) => n.port),
    logs: () => nodeLogs(nodes),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

/** The tail of every node's stderr, for a failure message. */
export function nodeLogs(nodes, tail = 4000) {
  return nodes
    .map((n) => {
      // Without the terminal colours of tracing's output.
      const text = n.logs().replace(/\x1b\[[0-9;]*m/g, '').trim();
      const shown = text.length > tail ? `...${text.slice(-tail)}` : text || '(nothing)';
      return `--- node ${n.name} (${n.impl}, ${n.url}${n.alive ? '' : ', stopped'}) stderr ---\n${shown}`;
    })
    .join('\n');
}

/** nginx's error log and the tail of its access log (status and upstream of each request), for a failure message. */
export async function proxyLogs(proxy, lines = 40) {
  if (!proxy) return '';
  const access = await readFile(path.join(proxy.prefix, 'access.log'), 'utf8').catch(() => '');
  const all = access.trim().split('\n');
  // Requests that did not succeed first (at most `lines`), then the last few.
  const bad = all.filter((l) => / (4\d\d|5\d\d) \d+ upstream=/.test(l));
  const tail = all.slice(-Math.ceil(lines / 2)).join('\n');
  return (
    `--- nginx ${proxy.name} error log ---\n${(await proxy.logs()).trim().slice(-3000)}\n` +
    `--- nginx access log: ${bad.length} of ${all.length} requests failed${bad.length > lines ? ` (first ${lines})` : ''} ---\n${bad.slice(0, lines).join('\n')}\n` +
    `--- nginx access log (last ${Math.ceil(lines / 2)}) ---\n${tail}`
  );
}

/** GET `${url}/node`: the name of the node that answered (rejects on non-200 / timeout). */
export async function getNodeName(url, timeoutMs = 3000) {
  const res = await fetch(`${url}/node`, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}/node: HTTP ${res.status} ${body.slice(0, 200)}`);
  return body.trim();
}

// --- clients ------------------------------------------------------------------

/** Kinds of client, each a factory (url, opts) -> socket with a uniform API. */
export const CLIENT_KINDS = {
  'official-polling': (url, opts) => officialClient(url, { transports: ['polling'], ...opts }),
  'official-default': (url, opts) => officialClient(url, { transports: ['polling', 'websocket'], ...opts }),
  'official-websocket': (url, opts) => officialClient(url, { transports: ['websocket'], ...opts }),
  'bundled-websocket': (url, opts) => bundledClient(url, { transport: 'websocket', ...opts }),
  'bundled-sse': (url, opts) => bundledClient(url, { transport: 'sse', ...opts }),
  'bundled-polling': (url, opts) => bundledClient(url, { transport: 'polling', ...opts }),
};

/** The official socket.io-client on its own connection. */
export function officialClient(url, { transports = ['polling', 'websocket'], ...opts } = {}) {
  const socket = officialIo(url, {
    forceNew: true,
    transports,
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    timeout: 10_000,
    ...opts,
  });
  socket.kind = transports.length === 1 ? `official-${transports[0]}` : 'official-default';
  return socket;
}

/**
 * The bundled client (client-js/dist/tidewire.mjs) forced to one transport
 * (no upgrade, no remembered fallback), on its own connection.
 */
export function bundledClient(url, { transport = 'websocket', ...opts } = {}) {
  const socket = bundledIo(url, {
    forceNew: true,
    WebSocket,
    transports: [transport],
    upgrade: false,
    rememberUpgrade: false,
    transportMemory: new TransportMemory({ storage: null }),
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    timeout: 10_000,
    ...opts,
  });
  socket.kind = `bundled-${transport}`;
  return socket;
}

/** The transport a connected client is on, whichever kind it is. */
export function transportOf(socket) {
  return socket.io?.engine?.transport?.name ?? socket.io?.transport ?? null;
}

/**
 * Tracks every client a test opens; close() disconnects them all. Each socket
 * gets `events`: a log of its lifecycle ({ at, type, detail }).
 */
export class Clients {
  constructor() {
    this.all = [];
  }

  /** Opens a client of `kind` (a CLIENT_KINDS key) to `url`. */
  open(kind, url, opts = {}) {
    const factory = CLIENT_KINDS[kind];
    if (!factory) throw new Error(`unknown client kind ${kind}`);
    const socket = factory(url, opts);
    socket.kind = kind;
    socket.label = `${kind}#${this.all.length}`;
    socket.lifecycle = [];
    const note = (type, detail) => socket.lifecycle.push({ at: Date.now(), type, detail });
    socket.on('connect', () => note('connect', { id: socket.id, recovered: socket.recovered }));
    socket.on('disconnect', (reason) => note('disconnect', reason));
    socket.on('connect_error', (err) => note('connect_error', err?.message ?? String(err)));
    this.all.push(socket);
    return socket;
  }

  close() {
    for (const s of this.all) {
      try {
        s.disconnect();
      } catch {
        // already closed
      }
    }
    this.all = [];
  }
}

/** Resolves once `socket` is connected; rejects after timeoutMs with the last connect_error. */
export function connected(socket, timeoutMs = 10_000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    let lastError = 'none';
    const onError = (err) => (lastError = err?.message ?? String(err));
    const onConnect = () => {
      clearTimeout(timer);
      socket.off('connect_error', onError);
      resolve(socket);
    };
    const timer = setTimeout(() => {
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
      reject(new Error(`${socket.label ?? socket.kind ?? 'client'} not connected after ${timeoutMs} ms (last connect_error: ${lastError})`));
    }, timeoutMs);
    socket.on('connect_error', onError);
    socket.once('connect', onConnect);
  });
}

/** Emits `event` with `args` and resolves with the ack's value; rejects after timeoutMs. */
export async function ack(socket, event, args = [], timeoutMs = 5000) {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, ...args);
  } catch (err) {
    throw new Error(`${socket.label ?? socket.kind ?? 'client'}: no ack to "${event}" ${JSON.stringify(args)} within ${timeoutMs} ms (${err?.message ?? err})`);
  }
}

/** Resolves with the first argument of the next `event` on `socket`; rejects after timeoutMs. */
export function nextEventOf(socket, event, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, handler);
      reject(new Error(`${socket.label ?? 'client'}: no "${event}" within ${timeoutMs} ms`));
    }, timeoutMs);
    function handler(value) {
      clearTimeout(timer);
      socket.off(event, handler);
      resolve(value);
    }
    socket.on(event, handler);
  });
}

/**
 * Records every `event` payload each socket receives: returns a function
 * got(socket) -> payload[] and a stop() that removes the listeners.
 */
export function recordEvent(sockets, event) {
  const seen = new Map();
  const handlers = [];
  for (const s of sockets) {
    const list = [];
    seen.set(s, list);
    const handler = (payload) => list.push(payload);
    s.on(event, handler);
    handlers.push([s, handler]);
  }
  return {
    got: (s) => seen.get(s) ?? [],
    stop() {
      for (const [s, h] of handlers) s.off(event, h);
    },
  };
}

/** Answers every `question` with `value(payload)` (the ask-room event). */
export function answerQuestions(socket, value) {
  socket.on('question', (from, cb) => {
    if (typeof cb === 'function') cb(value(from));
  });
}

/**
 * Opens `n` clients of `kind` to `url`, resolves once all are connected (and
 * asked `whoami`, so each carries `node` and `sid`). Rejects with the ones
 * that failed.
 */
export async function openConnected(clients, kind, url, n, { timeoutMs = 15_000, opts = {} } = {}) {
  const sockets = Array.from({ length: n }, () => clients.open(kind, url, opts));
  const results = await Promise.allSettled(sockets.map((s) => connected(s, timeoutMs).then(() => whoami(s))));
  const failed = results
    .map((r, i) => (r.status === 'rejected' ? `${r.reason.message}; events: ${describeLifecycle(sockets[i])}` : null))
    .filter(Boolean);
  if (failed.length) throw new Error(`${failed.length}/${n} ${kind} clients did not connect:\n${failed.slice(0, 5).join('\n')}`);
  return sockets;
}

/** A socket's lifecycle as one line: connect(id) / disconnect:reason / connect_error:message, with ms offsets. */
export function describeLifecycle(socket) {
  const t0 = socket.lifecycle?.[0]?.at ?? 0;
  return (socket.lifecycle ?? [])
    .map((e) => `+${e.at - t0}ms ${e.type}${e.type === 'connect' ? `(${e.detail.id}${e.detail.recovered ? ', recovered' : ''})` : `:${e.detail}`}`)
    .join(' ') || 'none';
}

/** Asks `whoami` and stores { node, id } on the socket as `node` / `sid`. */
export async function whoami(socket, timeoutMs = 5000) {
  const me = await ack(socket, 'whoami', [], timeoutMs);
  socket.node = me.node;
  socket.sid = me.id;
  return me;
}

/** Groups sockets by the node they are on (socket.node, from whoami). */
export function byNode(sockets) {
  const groups = {};
  for (const s of sockets) (groups[s.node] ??= []).push(s);
  return groups;
}

/** Waits `ms`, then lets pending I/O run (settling time for broadcasts). */
export const settle = (ms = 300) => sleep(ms);

/** Sorted copy. */
export const sorted = (list) => [...list].sort();

/** Describes what a list of numbers lacks and repeats, against 1..count. */
export function describeSequence(got, count) {
  const counts = new Map();
  for (const n of got) counts.set(n, (counts.get(n) ?? 0) + 1);
  const missing = [];
  const dupes = [];
  for (let i = 1; i <= count; i++) {
    const c = counts.get(i) ?? 0;
    if (c === 0) missing.push(i);
    if (c > 1) dupes.push(i);
  }
  const extra = [...counts.keys()].filter((k) => !(Number.isInteger(k) && k >= 1 && k <= count));
  let outOfOrder = 0;
  for (let i = 1; i < got.length; i++) if (got[i] <= got[i - 1]) outOfOrder++;
  const ranges = (list) => {
    const out = [];
    for (let i = 0; i < list.length; i++) {
      let j = i;
      while (j + 1 < list.length && list[j + 1] === list[j] + 1) j++;
      out.push(i === j ? `${list[i]}` : `${list[i]}..${list[j]}`);
      i = j;
    }
    return out.slice(0, 8).join(',') + (out.length > 8 ? ',...' : '');
  };
  return {
    ok: missing.length === 0 && dupes.length === 0 && extra.length === 0 && got.length === count,
    received: got.length,
    missing: missing.length,
    duplicates: dupes.length,
    outOfOrder,
    text: `${got.length} received, ${missing.length} missing [${ranges(missing)}], ${dupes.length} duplicated [${ranges(dupes)}], ${extra.length} unexpected, ${outOfOrder} out of order`,
  };
}
