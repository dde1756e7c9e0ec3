// The reference: the official Socket.IO 4.8 server with connection state
// recovery, speaking the same test contract as `sio-test-server` for what the
// fault tests use (namespace `/`):
//
// - `join` room → joins; acks the socket's rooms
// - `stream` {room, count, rate, directEvery} → `n` [number] for 1..=count at `rate`
//   per second to `room`; every directEvery-th number is a direct emit to each member
//   instead (the sockets fetchSockets finds in the room plus every id found there
//   earlier in this stream); acks {sent}
// - `recovered` → acks socket.recovered; `recovery-stats` → acks {connects, recovered}
//
// Environment: PORT (0: a free one), PING_INTERVAL_MS, PING_TIMEOUT_MS,
// RECOVERY_WINDOW_MS (connection state recovery with that maxDisconnectionDuration;
// unset: off). Prints `listening on http://127.0.0.1:PORT` once bound.
//
//   FAULT_SERVER=reference node --test tests/faults/resume.test.mjs

import { createServer } from 'node:http';
import { Server } from 'socket.io';

const env = (name) => (process.env[name] === undefined ? undefined : Number(process.env[name]));

const opts = {};
if (env('PING_INTERVAL_MS') !== undefined) opts.pingInterval = env('PING_INTERVAL_MS');
if (env('PING_TIMEOUT_MS') !== undefined) opts.pingTimeout = env('PING_TIMEOUT_MS');
if (env('RECOVERY_WINDOW_MS') !== undefined) {
  opts.connectionStateRecovery = { maxDisconnectionDuration: env('RECOVERY_WINDOW_MS'), skipMiddlewares: true };
}

const http = createServer((req, res) => {
  res.writeHead(404).end();
});
const io = new Server(http, opts);
const stats = { connects: 0, recovered: 0 };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function runStream({ room, count, rate, directEvery = 0 }) {
  const members = async () => (await io.in(room).fetchSockets()).map((s) => s.id);
  const known = new Set(await members());
  const start = performance.now();
  const period = 1000 / rate;
  let sent = 0;
  for (let n = 1; n <= count; n++) {
    const wait = start + (n - 1) * period - performance.now();
    if (wait > 1) await sleep(wait);
    if (directEvery > 0 && n % directEvery === 0) {
      for (const id of await members()) known.add(id);
      for (const id of known) io.to(id).emit('n', n);
    } else {
      io.to(room).emit('n', n);
    }
    sent++;
  }
  return sent;
}

io.on('connection', (socket) => {
  stats.connects++;
  if (socket.recovered) stats.recovered++;
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack([...socket.rooms]);
  });
  socket.on('stream', async (req, ack) => {
    const sent = await runStream(req);
    if (typeof ack === 'function') ack({ sent });
  });
  socket.on('recovered', (ack) => ack?.(socket.recovered));
  socket.on('recovery-stats', (ack) => ack?.({ ...stats }));
});

const port = env('PORT') ?? 3000;
http.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${http.address().port}\n`);
});
const stop = () => {
  io.close();
  http.close();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
