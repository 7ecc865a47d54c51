// The simplest correct long-poll on node:http: an id per message, `GET /lp?since=N` answers at once
// with what is newer or waits for it. One response body per publish is shared by every waiting poll.
import http from "node:http";
import { readBody, ready } from "./common.mjs";

const backlog = []; // [id, body]
let lastId = 0;
let held = [];

function answer(res, since) {
  const parts = [];
  for (let i = backlog.length - 1; i >= 0 && backlog[i][0] > since; i--) parts.unshift(backlog[i][1]);
  res.writeHead(200, { "Content-Type": "application/json", "X-Last": String(lastId) });
  res.end(`[${parts.join(",")}]`);
}

const server = http.createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/publish") {
    const body = (await readBody(req)).toString();
    backlog.push([++lastId, body]);
    if (backlog.length > 20_000) backlog.splice(0, 10_000);
    const waiting = held;
    held = [];
    const one = Buffer.from(`[${body}]`);
    const headers = { "Content-Type": "application/json", "X-Last": String(lastId) };
    for (const w of waiting) {
      if (w.res.destroyed) continue;
      if (w.since === lastId - 1) {
        w.res.writeHead(200, headers);
        w.res.end(one);
      } else answer(w.res, w.since);
    }
    res.end("ok");
  } else if (req.url.startsWith("/lp?since=")) {
    const since = Number(req.url.slice(10));
    if (since < lastId) return answer(res, since);
    held.push({ res, since });
  } else if (req.url === "/count") res.end(String(held.filter((w) => !w.res.destroyed).length));
  else res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => ready(server.address().port));
