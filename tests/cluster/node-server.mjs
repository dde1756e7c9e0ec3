// The Node implementation of tests/cluster/CONTRACT.md: socket.io 4.8 with
// @socket.io/redis-adapter 8.3 on a real Redis (no connection state recovery:
// that adapter has none). Used by tests/cluster as the reference node and to
// prove the fixtures (a non-sticky balancer breaks plain socket.io sessions).
//
//   HOST=127.0.0.1 PORT=0 REDIS_URL=redis://127.0.0.1:6379/ NODE_NAME=a node tests/cluster/node-server.mjs
//
// Prints `listening on http://HOST:PORT` once it accepts connections; the Redis
// connection may still be coming up (it keeps retrying while Redis is down).

import http from 'node:http';

import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT ?? 0);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379/';
const NODE = process.env.NODE_NAME || `node-${process.pid}`;

const log = (...args) => console.error(`[node ${NODE}]`, ...args);

// Two Redis connections (publish, subscribe); both retry forever with a short
// delay, so the node starts and keeps running while Redis is down.
const redisOptions = {
  url: REDIS_URL,
  socket: { reconnectStrategy: (retries) => Math.min(100 + retries * 50, 500), connectTimeout: 2000 },
};
const pubClient = createClient(redisOptions);
const subClient = pubClient.duplicate();
let lastRedisError = '';
for (const [name, client] of [['pub', pubClient], ['sub', subClient]]) {
  client.on('error', (err) => {
    // Logged once per distinct message, not per retry.
    const msg = `${name}: ${err.message || err.code || err}`;
    if (msg !== lastRedisError) log(`redis ${msg}`);
    lastRedisError = msg;
  });
  client.on('ready', () => log(`redis ${name} ready`));
  client.connect().catch((err) => log(`redis ${name} connect: ${err.message}`));
}

const httpServer = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://x');
  if (req.method === 'GET' && pathname === '/node') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(NODE);
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found');
});

const io = new Server(httpServer, {
  adapter: createAdapter(pubClient, subClient, { requestsTimeout: 3000 }),
});

// A message of another node (io.serverSideEmit): tell this node's clients.
io.on('hello', (payload) => {
  io.local.emit('heard', { node: NODE, payload });
});

const reply = (ack, value) => {
  if (typeof ack === 'function') ack(value);
};

io.on('connection', (socket) => {
  socket.on('whoami', (ack) => reply(ack, { node: NODE, id: socket.id }));

  socket.on('join', (room, ack) => {
    socket.join(room);
    reply(ack, { node: NODE });
  });

  socket.on('leave', (room, ack) => {
    socket.leave(room);
    reply(ack, { node: NODE });
  });

  socket.on('to-room', (room, event, payload, ack) => {
    io.to(room).emit(event, payload);
    reply(ack, { node: NODE });
  });

  socket.on('to-all', (event, payload, ack) => {
    io.emit(event, payload);
    reply(ack, { node: NODE });
  });

  socket.on('local-to-room', (room, event, payload, ack) => {
    io.local.to(room).emit(event, payload);
    reply(ack, { node: NODE });
  });

  socket.on('ask-room', (room, timeoutMs, ack) => {
    io.to(room)
      .timeout(timeoutMs)
      .emit('question', NODE, (err, replies) => {
        reply(ack, { replies: replies ?? [], error: err ? String(err.message ?? err) : null });
      });
  });

  socket.on('fetch', async (room, ack) => {
    try {
      const sockets = await io.in(room).fetchSockets();
      const list = sockets.map((s) => ({ id: s.id, rooms: [...s.rooms].sort() })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      reply(ack, list);
    } catch (err) {
      reply(ack, { error: String(err.message ?? err) });
    }
  });

  socket.on('sockets-join', (room, target, ack) => {
    io.in(room).socketsJoin(target);
    reply(ack, { node: NODE });
  });

  socket.on('disconnect-room', (room, ack) => {
    // Ack first: this socket may be in the room itself.
    reply(ack, { node: NODE });
    io.in(room).disconnectSockets(true);
  });

  socket.on('server-side', (payload, ack) => {
    io.serverSideEmit('hello', payload);
    reply(ack, { node: NODE });
  });

  socket.on('stream', (room, count, intervalMs, ack) => {
    let n = 0;
    const timer = setInterval(() => {
      n += 1;
      io.to(room).emit('n', n);
      if (n >= count) {
        clearInterval(timer);
        reply(ack, { node: NODE, sent: n });
      }
    }, intervalMs);
  });

  // The Node adapter has no membership view: an empty list (see CONTRACT.md).
  socket.on('cluster', (ack) => reply(ack, []));
});

httpServer.listen(PORT, HOST, () => {
  const { port } = httpServer.address();
  console.log(`listening on http://${HOST}:${port}`);
});

let closing = false;
function shutdown() {
  if (closing) return;
  closing = true;
  io.close();
  for (const client of [pubClient, subClient]) client.disconnect().catch(() => {});
  // Never hang on a stuck connection.
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
