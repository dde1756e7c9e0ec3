// The benchmark contract on Node Socket.IO v4, and nothing else.
// Namespace "/": `echo` acks its arguments back; `join` joins the room it names (acks
// "ok"); `broadcast` re-emits its payload as `tick` to room `bench` (acks "ok").
// Env: PORT (3000), HOST (127.0.0.1). Prints `listening on http://HOST:PORT`.
import { createServer } from "node:http";
import { Server } from "socket.io";

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 3000);
const httpServer = createServer();
const io = new Server(httpServer, { transports: ["polling", "websocket"] });

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
  });
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack("ok");
  });
  socket.on("broadcast", (payload, ack) => {
    io.to("bench").emit("tick", payload);
    if (typeof ack === "function") ack("ok");
  });
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  process.stdout.write(`listening on http://${a.address}:${a.port}\n`);
});
