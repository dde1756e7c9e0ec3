// The driver of the fault-injection runs (issue #7): a server, N clients each
// behind its own FaultProxy, a numbered stream to their room, faults injected
// all along, then the count of what every client got. Not a test file: the
// configurations and assertions are in resume.test.mjs.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { io as officialIo } from 'socket.io-client';
import { WebSocket } from 'ws';

import { io as bundledIo, TransportMemory } from '../../client-js/dist/tidewire.mjs';
import { startServer as startBinary } from '../lib/server.mjs';
import { FAULT_KINDS, FaultProxy, makeRng, sleep, subSeed } from './proxy.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
export const TARGET_DIR = path.resolve(process.env.CARGO_TARGET_DIR ?? path.join(REPO_ROOT, 'target'));

const intEnv = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`invalid ${name}=${raw}`);
  return n;
};

/** Run sizes, from the environment (defaults: the full proof of issue #7). */
export const SIZES = {
  clients: intEnv('FAULT_CLIENTS', 20),
  count: intEnv('FAULT_COUNT', 10_000),
  rate: intEnv('FAULT_RATE', 200),
  cuts: intEnv('FAULT_CUTS', 20),
  directEvery: intEnv('FAULT_DIRECT_EVERY', 10),
  drainMaxMs: intEnv('FAULT_DRAIN_MS', 30_000),
};

/** The fault kinds of the main runs: FAULT_KINDS=rst,fin,... (default: all). */
export const KINDS = process.env.FAULT_KINDS ? process.env.FAULT_KINDS.split(',').map((k) => k.trim()) : FAULT_KINDS;
for (const k of KINDS) if (!FAULT_KINDS.includes(k)) throw new Error(`unknown fault kind ${k} in FAULT_KINDS (${FAULT_KINDS.join(', ')})`);

/** The base seed: FAULT_SEED to replay a run, else a random one (printed). */
export const BASE_SEED = process.env.FAULT_SEED ? Number(process.env.FAULT_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0;

const hashName = (name) => {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
};

// ---------------------------------------------------------------------------
// Servers

/** Spawns a server that prints `listening on http://HOST:PORT`; resolves with { url, port, stop, logs }. */
function spawnServer(cmd, args, env) {
  return startBinary(cmd, env, { args, logsEnv: 'FAULT_SERVER_LOGS' });
}

/** 'tidewire' (the sio-test-server binary) or 'reference' (Socket.IO 4.8 in Node). */
export async function startServer(kind, env) {
  if (kind === 'reference') {
    return spawnServer(process.execPath, [path.join(HERE, 'reference-server.mjs')], env);
  }
  const bin = path.join(TARGET_DIR, 'debug', 'sio-test-server');
  if (!existsSync(bin)) {
    throw new Error(`server binary not found: ${bin}\nbuild it with \`cargo build -p tidewire-examples\` (CARGO_TARGET_DIR is honoured)`);
  }
  return spawnServer(bin, [], env);
}

// ---------------------------------------------------------------------------
// Clients

const CLIENT_OPTS = {
  forceNew: true,
  upgrade: false,
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
  randomizationFactor: 0.5,
  timeout: 5_000,
};

function makeSocket(clientKind, transport, url) {
  if (clientKind === 'official') {
    return officialIo(url, { ...CLIENT_OPTS, transports: [transport] });
  }
  return bundledIo(url, {
    ...CLIENT_OPTS,
    transports: [transport],
    rememberUpgrade: false,
    transportMemory: new TransportMemory({ storage: null }),
    WebSocket,
  });
}

/** One client behind its proxy, recording what it receives. */
class Client {
  constructor(index, clientKind, transport, proxy, room) {
    this.index = index;
    this.proxy = proxy;
    this.room = room;
    this.received = [];
    this.connects = 0;
    this.misses = 0;
    this.recoveredConnects = 0;
    this.sawRecoveredFalse = false;
    /** The last fault injected (a reconnection's outcome is attributed to it). */
    this.lastFault = null;
    this.reconnectsByKind = {};
    this.recoveredByKind = {};
    this.lastMessageAt = 0;
    this.joined = new Promise((resolve) => {
      this._onJoined = resolve;
    });
    const socket = makeSocket(clientKind, transport, proxy.url);
    this.socket = socket;
    socket.on('n', (n) => {
      this.received.push(n);
      this.lastMessageAt = Date.now();
    });
    socket.on('connect', () => {
      this.connects++;
      if (this.connects === 1) {
        socket.emit('join', room, () => this._onJoined());
        return;
      }
      const kind = this.lastFault ?? 'none';
      this.reconnectsByKind[kind] = (this.reconnectsByKind[kind] ?? 0) + 1;
      if (socket.recovered) {
        this.recoveredConnects++;
        this.recoveredByKind[kind] = (this.recoveredByKind[kind] ?? 0) + 1;
      } else {
        // Not recovered: the client is told (recovered === false) and, like any
        // application, joins its room again. What it missed is lost.
        this.misses++;
        this.sawRecoveredFalse = true;
        socket.emit('join', room);
      }
    });
  }

  get connected() {
    return this.socket.connected;
  }

  /** lost / doubled / reordered against 1..count. */
  check(count) {
    const seen = new Uint32Array(count + 1);
    let doubled = 0;
    let reordered = 0;
    let outOfRange = 0;
    let max = 0;
    for (const n of this.received) {
      if (!Number.isInteger(n) || n < 1 || n > count) {
        outOfRange++;
        continue;
      }
      if (seen[n]++) {
        doubled++;
        continue;
      }
      if (n < max) reordered++;
      else max = n;
    }
    let lost = 0;
    let gaps = 0;
    let firstLost = 0;
    for (let n = 1; n <= count; n++) {
      if (seen[n]) continue;
      lost++;
      if (n === 1 || seen[n - 1]) gaps++;
      firstLost ||= n;
    }
    const exact = lost === 0 && doubled === 0 && reordered === 0 && outOfRange === 0 && this.received.length === count;
    return { lost, gaps, firstLost, lastReceived: this.received.at(-1) ?? 0, doubled, reordered, outOfRange, exact };
  }
}

// ---------------------------------------------------------------------------
// Faults

/** Roughly how long each fault keeps a client away (to spread the cuts over the stream). */
const EXPECTED_MS = { rst: 400, fin: 400, halfOpen: 400, stall: 2_000, refuse: 3_500, resume: 800 };

async function waitConnected(client, ms) {
  const deadline = Date.now() + ms;
  while (!client.connected && Date.now() < deadline) await sleep(20);
  return client.connected;
}

/**
 * Injects faults into one client: spreads `cuts` faults over [now, endsAt],
 * never while the client is still away from the previous one; when time runs
 * short only the quick kinds.
 */
function faultLoop(client, rng, { kinds, cuts, endsAt, stallMs, refuseMs, isStopped }) {
  // The faults that keep a client away only briefly: used when time runs short.
  const quick = kinds.filter((k) => k !== 'stall' && k !== 'refuse');
  const perFault = kinds.reduce((a, k) => a + EXPECTED_MS[k], 0) / kinds.length;
  return (async () => {
    let done = 0;
    // Until the stream is over and this client had its share of cuts (the ones
    // that run late hit the tail of the stream, still in flight): at most 15 s more.
    const over = () => isStopped() && (done >= cuts || Date.now() > endsAt + 15_000);
    while (!over() && cuts > 0) {
      const left = Math.max(1, cuts - done);
      const budget = endsAt - Date.now() - 1_000 - left * perFault * 1.3;
      const gap = Math.max(100, budget / left) * (0.5 + rng());
      await sleep(Math.min(gap, 5_000));
      if (over()) break;
      if (!(await waitConnected(client, 10_000))) continue;
      if (over()) break;
      const short = done < cuts && endsAt - Date.now() < left * perFault * 1.3;
      const kind = rng.pick(short && quick.length ? quick : kinds);
      client.lastFault = kind;
      const p = client.proxy;
      switch (kind) {
        case 'rst':
          p.rst();
          break;
        case 'fin':
          p.fin();
          break;
        case 'halfOpen':
          p.halfOpen();
          break;
        case 'stall':
          await p.stall(rng.int(stallMs[0], stallMs[1]));
          break;
        case 'refuse':
          await p.refuse(rng.int(refuseMs[0], refuseMs[1]));
          break;
        case 'resume':
          p.resumeCut();
          break;
        default:
          throw new Error(`unknown fault ${kind}`);
      }
      done++;
      // Let the reconnection start before the next fault is planned.
      await sleep(EXPECTED_MS[kind] / 4);
    }
  })();
}

// ---------------------------------------------------------------------------
// A run

/**
 * Runs one configuration and returns its result row.
 * @param {{
 *   name: string, server: 'tidewire' | 'reference', client: 'official' | 'bundled',
 *   transport: 'websocket' | 'polling' | 'sse', recoveryWindowMs?: number,
 *   clients?: number, count?: number, rate?: number, cuts?: number, directEvery?: number,
 *   kinds?: string[], stallMs?: [number, number], refuseMs?: [number, number],
 *   pingIntervalMs?: number, pingTimeoutMs?: number, drainMaxMs?: number, log?: (line: string) => void,
 * }} cfg
 */
export async function runScenario(cfg) {
  const c = {
    ...SIZES,
    kinds: KINDS,
    stallMs: [1_000, 3_000],
    refuseMs: [1_000, 5_000],
    pingIntervalMs: 1_000,
    pingTimeoutMs: 1_000,
    room: 'r',
    log: (line) => console.log(line),
    ...cfg,
  };
  const seed = subSeed(BASE_SEED, hashName(c.name));
  c.log(
    `[faults] ${c.name}: FAULT_SEED=${BASE_SEED} (run seed ${seed}), ${c.clients} clients, ${c.count} numbers at ${c.rate}/s, ` +
      `${c.cuts} cuts per client (${c.kinds.join(', ')}), recovery window ${c.recoveryWindowMs ?? 'off'}`,
  );
  const env = { PING_INTERVAL_MS: String(c.pingIntervalMs), PING_TIMEOUT_MS: String(c.pingTimeoutMs) };
  if (c.recoveryWindowMs !== undefined) env.RECOVERY_WINDOW_MS = String(c.recoveryWindowMs);
  const server = await startServer(c.server, env);
  const proxies = [];
  const clients = [];
  let controller;
  try {
    for (let i = 0; i < c.clients; i++) {
      const proxy = new FaultProxy({ targetPort: server.port, name: `client-${i}`, rng: makeRng(subSeed(seed, 1000 + i)) });
      await proxy.listen();
      proxies.push(proxy);
      clients.push(new Client(i, c.client, c.transport, proxy, c.room));
    }
    await withTimeout(
      Promise.all(clients.map((cl) => cl.joined)),
      15_000,
      () => `clients joined: ${clients.filter((cl) => cl.connects > 0).length}/${c.clients} connected`,
    );

    // The controller talks to the server directly, outside the room and the faults.
    controller = officialIo(server.url, { forceNew: true, transports: ['websocket'] });
    await withTimeout(new Promise((resolve) => controller.once('connect', resolve)), 10_000, () => 'controller connect');

    const streamMs = (c.count / c.rate) * 1000;
    const startedAt = Date.now();
    const endsAt = startedAt + streamMs;
    const streamDone = controller
      .timeout(streamMs + 120_000)
      .emitWithAck('stream', { room: c.room, count: c.count, rate: c.rate, directEvery: c.directEvery });
    let stopped = false;
    const loops = clients.map((cl, i) =>
      faultLoop(cl, makeRng(subSeed(seed, i)), {
        kinds: c.kinds,
        cuts: c.cuts,
        endsAt,
        stallMs: c.stallMs,
        refuseMs: c.refuseMs,
        isStopped: () => stopped,
      }),
    );
    const ack = await streamDone;
    const streamTookMs = Date.now() - startedAt;
    stopped = true;
    await Promise.all(loops);

    // Drain: until every client has everything, or nothing moved for 3 s with
    // everyone connected, or drainMaxMs.
    const drainStart = Date.now();
    for (;;) {
      await sleep(100);
      const complete = clients.every((cl) => cl.connected && new Set(cl.received).size >= c.count);
      const lastMsg = Math.max(...clients.map((cl) => cl.lastMessageAt));
      const quiet = clients.every((cl) => cl.connected) && Date.now() - Math.max(lastMsg, drainStart) > 3_000;
      if (complete || quiet || Date.now() - drainStart > c.drainMaxMs) break;
    }
    // A moment for stray duplicates to show up after the last number.
    await sleep(500);
    const drainMs = Date.now() - drainStart;

    let serverStats = null;
    try {
      serverStats = await controller.timeout(2_000).emitWithAck('recovery-stats');
    } catch {
      // an older server without the event
    }

    const perClient = clients.map((cl) => ({ ...cl.check(c.count), cl }));
    const sum = (f) => perClient.reduce((a, r) => a + f(r), 0);
    const cutsByKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, proxies.reduce((a, p) => a + p.cuts[k], 0)]));
    const reconnectsByKind = {};
    const recoveredByKind = {};
    for (const cl of clients) {
      for (const [k, v] of Object.entries(cl.reconnectsByKind)) reconnectsByKind[k] = (reconnectsByKind[k] ?? 0) + v;
      for (const [k, v] of Object.entries(cl.recoveredByKind)) recoveredByKind[k] = (recoveredByKind[k] ?? 0) + v;
    }
    const worst = perClient.reduce((w, r) => (r.lost + r.doubled > w.lost + w.doubled ? r : w), perClient[0]);
    const row = {
      name: c.name,
      server: c.server,
      transport: c.transport,
      client: c.client,
      window: c.recoveryWindowMs ?? 'off',
      clients: c.clients,
      count: c.count,
      sent: ack?.sent,
      deliveries: c.clients * c.count,
      lost: sum((r) => r.lost),
      doubled: sum((r) => r.doubled),
      reordered: sum((r) => r.reordered),
      outOfRange: sum((r) => r.outOfRange),
      exactClients: perClient.filter((r) => r.exact).length,
      worstClient: {
        index: worst.cl.index,
        lost: worst.lost,
        gaps: worst.gaps,
        firstLost: worst.firstLost,
        lastReceived: worst.lastReceived,
        doubled: worst.doubled,
        reconnects: worst.cl.connects - 1,
        misses: worst.cl.misses,
        connected: worst.cl.connected,
      },
      reconnects: clients.reduce((a, cl) => a + cl.connects - 1, 0),
      misses: clients.reduce((a, cl) => a + cl.misses, 0),
      sawRecoveredFalse: clients.some((cl) => cl.sawRecoveredFalse),
      cutsByKind,
      minCutsPerClient: Math.min(...proxies.map((p) => p.totalCuts())),
      reconnectsByKind,
      recoveredByKind,
      proxyStats: {
        accepted: proxies.reduce((a, p) => a + p.stats.accepted, 0),
        refused: proxies.reduce((a, p) => a + p.stats.refused, 0),
        connsCut: proxies.reduce((a, p) => a + p.stats.connsCut, 0),
        resumeCutOnReply: proxies.reduce((a, p) => a + p.stats.resumeCutOnReply, 0),
        resumeCutOnTimer: proxies.reduce((a, p) => a + p.stats.resumeCutOnTimer, 0),
      },
      serverStats,
      streamTookMs,
      drainMs,
      seed: BASE_SEED,
    };
    c.log(`[faults] ${formatRow(row)}`);
    c.log(`[faults]   by fault kind, recovered/reconnects: ${formatByKind(row)}; proxy ${JSON.stringify(row.proxyStats)}; server ${JSON.stringify(serverStats)}`);
    c.log(`[faults]   worst client: ${JSON.stringify(row.worstClient)}; stream took ${streamTookMs} ms, drain ${drainMs} ms`);
    return row;
  } finally {
    controller?.disconnect();
    for (const cl of clients) cl.socket.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await server.stop();
  }
}

function withTimeout(promise, ms, describe) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${describe()}`)), ms);
    }),
  ]);
}

// ---------------------------------------------------------------------------
// Reporting

const KIND_SHORT = { rst: 'rst', fin: 'fin', halfOpen: 'half', stall: 'stall', refuse: 'refuse', resume: 'resume' };

export function formatRow(r) {
  const cuts = FAULT_KINDS.map((k) => `${KIND_SHORT[k]} ${r.cutsByKind[k]}`).join(' ');
  return (
    `${r.name}: transport ${r.transport}, client ${r.client}, server ${r.server}, window ${r.window}: ` +
    `lost ${r.lost}, doubled ${r.doubled}, reordered ${r.reordered}, misses ${r.misses}/${r.reconnects} reconnects, ` +
    `exact clients ${r.exactClients}/${r.clients}, cuts: ${cuts} (min ${r.minCutsPerClient}/client)`
  );
}

export function formatByKind(r) {
  return Object.keys(r.reconnectsByKind)
    .sort()
    .map((k) => `${k} ${r.recoveredByKind[k] ?? 0}/${r.reconnectsByKind[k]}`)
    .join(', ');
}

/** A fixed-width table of result rows. */
export function formatTable(rows) {
  const header = ['run', 'transport', 'client', 'server', 'window', 'deliveries', 'lost', 'doubled', 'reordered', 'misses', 'reconn', 'exact', ...FAULT_KINDS.map((k) => KIND_SHORT[k])];
  const lines = rows.map((r) => [
    r.name,
    r.transport,
    r.client,
    r.server,
    String(r.window),
    String(r.deliveries),
    String(r.lost),
    String(r.doubled),
    String(r.reordered),
    String(r.misses),
    String(r.reconnects),
    `${r.exactClients}/${r.clients}`,
    ...FAULT_KINDS.map((k) => String(r.cutsByKind[k])),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}
