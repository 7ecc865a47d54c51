// socket.io as its docs show it: io.emit to every connected socket; publishes over HTTP.
import http from "node:http";
import { Server } from "socket.io";
import { readBody, ready } from "./common.mjs";

const server = http.createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/publish") {
    const body = await readBody(req);
    io.emit("m", JSON.parse(body));
    res.end("ok");
  } else if (req.url === "/count") res.end(String(io.of("/").sockets.size));
  else if (!req.url.startsWith("/socket.io/")) res.writeHead(404).end();
});
const io = new Server(server, { perMessageDeflate: false, httpCompression: false, cors: { origin: "*" } });
// bench/requests.mjs: socket.io's emit with an acknowledgement, answered at once.
io.on("connection", (socket) => socket.on("echo", (data, ack) => ack(data)));
server.listen(0, "127.0.0.1", () => ready(server.address().port));
