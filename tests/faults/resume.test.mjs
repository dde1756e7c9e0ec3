// Issue #7's proof: connection state recovery through a proxy that keeps
// cutting every client (RST, FIN, half-open, stalls, refused reconnects, cuts
// in the middle of the resume handshake). Every client must end with every
// number of the stream exactly once, in order, with no recovery miss.
//
//   node --test tests/faults/                        # full size (10,000 at 200/s, 20 clients, 20 cuts each)
//   FAULT_COUNT=2000 FAULT_CUTS=6 node --test tests/faults/   # CI size
//   FAULT_SERVER=reference node --test tests/faults/resume.test.mjs   # the Socket.IO 4.8 reference (report only)
//
// Environment: FAULT_SEED (replay the fault schedule), FAULT_CLIENTS, FAULT_COUNT,
// FAULT_RATE, FAULT_CUTS, FAULT_DIRECT_EVERY, FAULT_DRAIN_MS, FAULT_KINDS (e.g. rst,fin;
// the controls keep theirs), FAULT_ONLY (substring
// of the run names to keep), FAULT_SERVER (tidewire | reference), FAULT_SERVER_LOGS=1.
// The tidewire server is $CARGO_TARGET_DIR/debug/sio-test-server.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { BASE_SEED, formatByKind, formatRow, formatTable, runScenario, SIZES, TARGET_DIR } from './harness.mjs';

const SERVER = process.env.FAULT_SERVER ?? 'tidewire';
if (!['tidewire', 'reference'].includes(SERVER)) throw new Error(`FAULT_SERVER must be tidewire or reference, not ${SERVER}`);
const REFERENCE = SERVER === 'reference';
const ONLY = process.env.FAULT_ONLY;

// Longer than any outage the faults cause (refusals last up to 5 s).
const WINDOW_MS = 60_000;

// Node 20 can spin forever in its exit-time handle cleanup (FreeEnvironment →
// CleanupHandles) after thousands of sockets were reset under load: once the
// test runner has nothing left to do, exit explicitly (the timer lets it flush).
process.on('beforeExit', () => {
  setTimeout(() => process.exit(), 300);
});

const rows = [];
after(() => {
  if (rows.length === 0) return;
  console.log(`\n[faults] FAULT_SEED=${BASE_SEED}, server ${SERVER}\n${formatTable(rows)}\n`);
  try {
    const dir = path.join(TARGET_DIR, 'faults');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `last-${SERVER}.json`), `${JSON.stringify(rows, null, 2)}\n`);
  } catch {
    // the report file is a convenience
  }
});

const streamMs = (SIZES.count / SIZES.rate) * 1000;
const TIMEOUT = { timeout: streamMs + SIZES.drainMaxMs + 120_000 };

function run(name, cfg, check) {
  if (ONLY && !name.includes(ONLY)) return;
  test(name, TIMEOUT, async () => {
    const row = await runScenario({ name, server: SERVER, ...cfg });
    rows.push(row);
    check(row);
  });
}

/** What the proof demands of a run with recovery on. */
function assertPerfect(row) {
  const summary = `${formatRow(row)}; by kind ${formatByKind(row)}`;
  assert.equal(row.sent, row.count, `the server sent everything: ${summary}`);
  assert.ok(row.minCutsPerClient >= SIZES.cuts, `every client cut at least ${SIZES.cuts} times: ${summary}`);
  assert.equal(row.lost, 0, `nothing lost: ${summary}`);
  assert.equal(row.doubled, 0, `nothing doubled: ${summary}`);
  assert.equal(row.reordered, 0, `nothing reordered: ${summary}`);
  assert.equal(row.outOfRange, 0, `nothing unexpected: ${summary}`);
  assert.equal(row.misses, 0, `no recovery miss inside the window: ${summary}`);
  assert.equal(row.exactClients, row.clients, `every client has 1..N exactly once in order: ${summary}`);
}

/** Reference runs only report: the point is to see what Socket.IO 4.8 does through the same faults. */
function assertRan(row) {
  assert.equal(row.sent, row.count);
  assert.ok(row.minCutsPerClient >= Math.min(SIZES.cuts, 1), 'the proxy injected faults');
}

const check = REFERENCE ? assertRan : assertPerfect;

describe(`recovery through faults (server: ${SERVER})`, () => {
  const configs = [
    ['websocket', 'official'],
    ['polling', 'official'],
    ['websocket', 'bundled'],
    ...(REFERENCE ? [] : [['sse', 'bundled']]),
    ['polling', 'bundled'],
  ];
  for (const [transport, client] of configs) {
    run(`${transport}/${client}`, { transport, client, recoveryWindowMs: WINDOW_MS }, check);
  }
});

// Controls: the same harness must fail loudly when recovery cannot work.
describe(`controls (server: ${SERVER})`, () => {
  const small = {
    clients: Math.min(SIZES.clients, 5),
    count: Math.min(SIZES.count, 2_000),
    cuts: Math.min(SIZES.cuts, 5),
  };
  run(
    'control: recovery disabled loses messages',
    { transport: 'websocket', client: 'bundled', ...small, kinds: ['rst', 'fin', 'refuse', 'resume'] },
    (row) => {
      assert.ok(row.lost > 0, `recovery off must lose messages: ${formatRow(row)}`);
      assert.ok(row.misses > 0, `and every reconnection is a miss: ${formatRow(row)}`);
    },
  );
  run(
    'control: a window shorter than the outage reports misses',
    {
      transport: 'websocket',
      client: 'bundled',
      ...small,
      recoveryWindowMs: 300,
      kinds: ['refuse'],
      refuseMs: [1_500, 3_000],
    },
    (row) => {
      assert.ok(row.misses > 0, `outages longer than the window must be misses: ${formatRow(row)}`);
      assert.ok(row.sawRecoveredFalse, 'the client was told (recovered === false)');
    },
  );
});
