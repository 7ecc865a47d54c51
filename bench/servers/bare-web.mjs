// The practical limit on Bun and on Deno, as bare-ws/bare-sse are on Node: each runtime's own server
// (Bun.serve with its websocket handlers, Deno.serve with Deno.upgradeWebSocket), one string per
// publish sent to every socket and enqueued, encoded once, on every SSE stream. Run by bun or deno.
import { ready } from "./common.mjs";

const sockets = new Set();
const streams = new Set();
const encoder = new TextEncoder();

function sseResponse() {
  let controller;
  const body = new ReadableStream({
    start(c) {
      controller = c;
      c.enqueue(encoder.encode(": ok\n\n"));
      streams.add(c);
    },
    cancel() {
      streams.delete(controller);
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" } });
}

/** Everything but the WebSocket upgrade, in web-standard terms. */
async function handle(req) {
  const url = new URL(req.url);
  if (req.method === "POST" && url.pathname === "/publish") {
    const body = await req.text();
    for (const ws of sockets) ws.send(body);
    const event = encoder.encode(`data: ${body}\n\n`);
    for (const c of streams) c.enqueue(event);
    return new Response("ok");
  }
  if (url.pathname === "/sse") return sseResponse();
  if (url.pathname === "/count") return new Response(String(sockets.size + streams.size));
  return new Response(null, { status: 404 });
}

if (globalThis.Bun) {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 255,
    fetch: (req, srv) => (req.headers.get("upgrade") === "websocket" && srv.upgrade(req) ? undefined : handle(req)),
    websocket: {
      perMessageDeflate: false,
      open: (ws) => sockets.add(ws),
      close: (ws) => sockets.delete(ws),
      message() {},
    },
  });
  ready(server.port);
} else {
  Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: ({ port }) => ready(port) },
    (req) => {
      if (req.headers.get("upgrade") !== "websocket") return handle(req);
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = () => sockets.add(socket);
      socket.onclose = () => sockets.delete(socket);
      return response;
    },
  );
}
