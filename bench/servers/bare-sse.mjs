// The practical limit for SSE on Node: node:http, one Buffer per publish written to every stream.
import http from "node:http";
import { readBody, ready } from "./common.mjs";

const streams = new Set();
const server = http.createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/publish") {
    const body = await readBody(req);
    const event = Buffer.concat([Buffer.from("data: "), body, Buffer.from("\n\n")]);
    for (const s of streams) s.write(event);
    res.end("ok");
  } else if (req.url === "/sse") {
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
    res.write(": ok\n\n");
    streams.add(res);
    res.on("close", () => streams.delete(res));
  } else if (req.url === "/count") res.end(String(streams.size));
  else res.writeHead(404).end();
});
server.listen(0, "127.0.0.1", () => ready(server.address().port));
