import type { Hono } from "hono";
import { utf8Length } from "../../src/text.js";
import { type RuntimeLink, type Served, servedBy, serverUrl } from "../http/listening.js";
import { bunGlobal, type BunSocket, type BunWebSocketHandlers } from "./types.js";
import { BunWsSocket, type BunSocketData } from "./ws-socket.js";

/** Bun's longest idle timeout, in seconds: a held long-poll or a quiet stream must outlast it. */
const BUN_MAX_IDLE_S = 255;
/** Seconds a WebSocket may go without a frame or a pong before Bun closes it (Bun pings meanwhile). */
const WS_IDLE_S = 120;

/** Bun's `websocket` handlers: each socket's frames and its end go to the transport. */
function websocketHandlers(link: RuntimeLink): BunWebSocketHandlers<BunSocketData> {
  return {
    open(ws: BunSocket<BunSocketData>) {
      const socket = new BunWsSocket(ws);
      ws.data.socket = socket;
      try {
        socket.peer = ws.data.open(socket);
      } catch (e) {
        link.report(e);
        socket.close(1011, "server error");
      }
    },
    message(ws, message) {
      const peer = ws.data.socket?.peer;
      if (typeof message === "string") peer?.receive(message, utf8Length(message));
      else peer?.receive(null, message.byteLength);
    },
    drain: (ws) => ws.data.socket?.drained(),
    close: (ws) => ws.data.socket?.closed(),
    // As on Node: up to this ceiling a frame is read and refused by the transport with a reason that
    // says the limit; beyond it Bun's bare 1009 guards memory.
    maxPayloadLength: link.maxFrameBytes * 4,
    // Bun drops a frame past this limit (send returns 0): the transport cuts a slow consumer at
    // maxBufferedBytes long before, and a drop still cuts the socket (BunWsSocket.send).
    backpressureLimit: Math.max(16 * 1024 * 1024, link.maxBufferedBytes * 4),
    closeOnBackpressureLimit: false,
    perMessageDeflate: false,
    idleTimeout: WS_IDLE_S,
    sendPings: true,
  };
}

/** Serves `app` (default: the bus's routes at its base) on `Bun.serve`, WebSockets by Bun's own server. */
export async function bunListen(link: RuntimeLink, port: number, hostname: string, app?: Hono): Promise<Served> {
  const bun = bunGlobal();
  if (!bun) throw new Error("cometbus: bunListen runs on Bun only");
  const root = app ?? link.mounted();
  const server = bun.serve<BunSocketData>({
    port,
    hostname,
    // Bun's default of 10 s cuts a held long-poll (25 s) and a stream between heartbeats.
    idleTimeout: BUN_MAX_IDLE_S,
    fetch: (req, bunServer) => root.fetch(req, { bun: bunServer }),
    error: (e) => {
      link.report(e);
      return Response.json({ error: "internal error" }, { status: 500, headers: { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" } });
    },
    websocket: websocketHandlers(link),
  });
  return servedBy("bun", link, server.port, serverUrl(hostname, server.port), server, {
    stopAccepting: async () => void (await server.stop(false)),
    closeAll: () => void server.stop(true),
  });
}
