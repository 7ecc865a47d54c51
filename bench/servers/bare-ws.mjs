// The practical limit for WebSocket on Node: `ws`, one Buffer per publish sent to every socket.
import http from "node:http";
import { WebSocketServer } from "ws";
import { readBody, ready } from "./common.mjs";

const server = http.createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/publish") {
    const body = await readBody(req);
    for (const ws of wss.clients) ws.send(body, { binary: false });
    res.end("ok");
  } else if (req.url === "/count") res.end(String(wss.clients.size));
  else res.writeHead(404).end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
server.listen(0, "127.0.0.1", () => ready(server.address().port));
