import { STATUS_CODES, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createAdaptorServer } from "@hono/node-server";
import { Hono } from "hono";
import { WebSocketServer } from "ws";
import type { MessageBus } from "./bus.js";
import { expectUpgrade, takeUpgrade } from "./upgrade.js";

export interface Listening {
  server: Server;
  port: number;
  url: string;
  /** Stops accepting, ends every connection, and closes the bus. */
  close(): Promise<void>;
}

/** The routes mounted at `base` in an app of their own. */
export function mountedApp(bus: MessageBus): Hono {
  return new Hono().route(bus.options.base, bus.routes());
}

export async function listen(bus: MessageBus, port: number, hostname: string, app?: Hono): Promise<Listening> {
  const root = app ?? mountedApp(bus);
  const server = createAdaptorServer({ fetch: root.fetch }) as Server;
  // Node closes an idle keep-alive socket after 5 s, which races with clients (and proxies) that
  // reuse it just then: their next publish or poll fails with "other side closed". Outlast them.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  attach(bus, server, root);
  const spare = spareSockets(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return {
    server,
    port: actual,
    url: `http://${host}:${actual}`,
    async close() {
      await bus.close();
      await new Promise<void>((resolve) => {
        // Held polls were just answered and streams ended, but their last bytes are still on the way
        // out: cutting every connection at once lost them. Close each connection once it is idle,
        // and cut whatever is still open after a grace period.
        const idle = setInterval(() => {
          server.closeIdleConnections();
          spare.closeAll();
        }, 10);
        const cut = setTimeout(() => {
          server.closeAllConnections();
          // Upgraded sockets are not the HTTP server's to close: a WebSocket client that never
          // answers the close frame held close() for ws's 30 s closing timeout.
          spare.destroyAll();
        }, 1000);
        server.close(() => {
          clearInterval(idle);
          clearTimeout(cut);
          resolve();
        });
      });
    },
  };
}

/**
 * Connections that carry no request: clients (undici, browsers) open spare ones, and Node counts a
 * connection that never sent a request as busy, so close() waited its whole grace period for them.
 * WebSockets are busy too: they finish their own closing handshake.
 */
function spareSockets(server: Server): { closeAll(): void; destroyAll(): void } {
  const sockets = new Set<Socket>();
  const busy = new WeakSet<Duplex>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("request", (req: IncomingMessage, res) => {
    busy.add(req.socket);
    res.once("close", () => busy.delete(req.socket));
  });
  server.on("upgrade", ownUpgradeListener((_req: IncomingMessage, socket: Duplex) => busy.add(socket)));
  return {
    closeAll() {
      for (const s of sockets) if (!busy.has(s)) s.destroy();
    },
    destroyAll() {
      for (const s of sockets) s.destroy();
    },
  };
}

function toRequest(req: IncomingMessage): Request {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    headers.set(k, Array.isArray(v) ? v.join(", ") : v);
  }
  return new Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/"}`, { method: "GET", headers });
}

async function reject(socket: Duplex, res: Response): Promise<void> {
  if (socket.destroyed) return;
  const status = res.status >= 400 ? res.status : 500;
  const body = res.status >= 400 ? await res.text() : JSON.stringify({ error: "upgrade refused" });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\n` +
      `Content-Type: ${res.headers.get("content-type") ?? "application/json"}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export function attach(bus: MessageBus, server: Server, app?: Hono): void {
  const root = app ?? mountedApp(bus);
  const wss = new WebSocketServer({
    noServer: true,
    // ws closes an oversized frame with 1009 but no reason; up to this ceiling the frame is read and
    // refused by WsSubscriber with a reason that says the limit. Beyond it ws's bare 1009 still guards memory.
    maxPayload: bus.limits.maxFrameBytes * 4,
    perMessageDeflate: false,
    clientTracking: false,
  });
  const prefix = bus.options.base + "/";
  const prefixes = busPrefixes.get(server) ?? [];
  busPrefixes.set(server, [...prefixes, prefix]);
  server.on("upgrade", ownUpgradeListener(async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? "/").split("?")[0];
    if (!path.startsWith(prefix)) {
      // Another handler's upgrade. With no other handler the socket used to hang open forever: the
      // first bus attached refuses it, unless another bus on this server serves that path.
      const buses = busPrefixes.get(server)!;
      const unclaimed = !buses.some((p) => path.startsWith(p)) && server.listeners("upgrade").every((l) => ownListeners.has(l));
      if (unclaimed && buses[0] === prefix) {
        socket.on("error", () => socket.destroy());
        await reject(socket, Response.json({ error: "not found" }, { status: 404 }));
      }
      return;
    }
    socket.on("error", () => socket.destroy());
    if (!path.endsWith("/ws") || req.headers.upgrade?.toLowerCase() !== "websocket") {
      await reject(socket, Response.json({ error: "not found" }, { status: 404 }));
      return;
    }
    expectUpgrade(req);
    let res: Response;
    try {
      res = await root.fetch(toRequest(req), { incoming: req, outgoing: undefined });
    } catch (e) {
      bus.logError(e);
      res = Response.json({ error: "internal error" }, { status: 500 });
    }
    const accept = takeUpgrade(req);
    if (!accept || socket.destroyed) return reject(socket, res);
    wss.handleUpgrade(req, socket, head, (ws) => {
      try {
        accept(ws);
      } catch (e) {
        bus.logError(e);
        ws.close(1011, "server error");
      }
    });
  }));
  server.on("close", () => wss.close());
}

/** cometbus's own upgrade listeners, so an upgrade nobody else listens for can be refused. */
const ownListeners = new WeakSet<Function>();
const busPrefixes = new WeakMap<Server, string[]>();
function ownUpgradeListener<F extends Function>(f: F): F {
  ownListeners.add(f);
  return f;
}
