import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { getRequestListener, RequestError } from "@hono/node-server";
import { Hono } from "hono";
import { WebSocketServer } from "ws";
import type { MessageBus } from "../bus.js";
import { truncateUtf8 } from "../../src/text.js";
import { explainingWebSocket } from "./ws-frames.js";
import { expectUpgrade, takeUpgrade } from "../http/upgrade.js";

export interface Listening {
  server: Server;
  port: number;
  url: string;
  /** Stops accepting, ends every connection, and closes the bus. */
  close(): Promise<void>;
}

/** The routes mounted at `base` in an app of their own; outside it, a JSON 404 too. */
export function mountedApp(bus: MessageBus): Hono {
  const app = new Hono().route(bus.options.base, bus.routes());
  app.notFound((c) => c.json({ error: "not found" }, 404, { "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store" }));
  return app;
}

export async function listen(bus: MessageBus, port: number, hostname: string, app?: Hono): Promise<Listening> {
  const root = app ?? mountedApp(bus);
  const listener = getRequestListener(root.fetch, {
    // A request target the adapter cannot make a URL of (`GET *`, a bad Host) is bad input: JSON, as every other.
    errorHandler: (e) => {
      if (!(e instanceof RequestError)) bus.logError(e);
      return Response.json(
        { error: e instanceof RequestError ? `bad request: ${truncateUtf8(e.message, 200)}` : "internal error" },
        { status: e instanceof RequestError ? 400 : 500, headers: { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" } },
      );
    },
  });
  const server = createServer(listener as (req: IncomingMessage, res: ServerResponse) => void);
  // Node closes an idle keep-alive socket after 5 s, which races with clients (and proxies) that
  // reuse it just then: their next publish or poll fails with "other side closed". Outlast them.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Requests Node's parser refuses (a bad Content-Length, raw bytes in the target) get a JSON error
  // like every other bad request, not a bare 400.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As Node's own handler: answer only on a socket nothing was written to yet (mid-pipeline, an
    // answer would corrupt the response in progress).
    if (!socket.writable || (socket as Socket).bytesWritten > 0 || err.code === "ECONNRESET") return socket.destroy();
    const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    const body = JSON.stringify({ error: `bad request: ${err.code ?? "unreadable"}` });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
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

/** A host name or address with an optional port: nothing that could change the URL's path. */
const VALID_HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The upgrade as a web Request for the Hono app. Its URL is built from Host and the request target,
 * so both are checked as @hono/node-server checks plain requests: a Host such as
 * `x/message-bus/other-client/ws?` would otherwise move the path the app routes (another client's
 * socket, other GET routes). Null when either is not acceptable.
 */
function toRequest(req: IncomingMessage): Request | null {
  const host = req.headers.host ?? "localhost";
  const target = req.url ?? "/";
  if (!VALID_HOST.test(host) || target[0] !== "/") return null;
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    headers.set(k, Array.isArray(v) ? v.join(", ") : v);
  }
  const scheme = (req.socket as Socket & { encrypted?: boolean }).encrypted ? "https" : "http";
  const url = new URL(`${scheme}://${host}${target}`);
  // The target may not climb out of its path either (`/message-bus/../x`): the URL must keep it.
  if (url.pathname + url.search !== target) return null;
  return new Request(url, { method: "GET", headers });
}

async function reject(socket: Duplex, res: Response): Promise<void> {
  if (socket.destroyed) return;
  const status = res.status >= 400 ? res.status : 500;
  const body = res.status >= 400 ? await res.text() : JSON.stringify({ error: "upgrade refused" });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\n` +
      `Content-Type: ${res.headers.get("content-type") ?? "application/json"}\r\n` +
      "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n" +
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
    WebSocket: explainingWebSocket(bus.limits.maxFrameBytes),
  });
  // A handshake ws refuses (no key, another version) is answered as every bad request is: JSON.
  wss.on("wsClientError", (err: Error, socket: Duplex) => {
    const status = err.message === "Invalid HTTP method" ? 405 : 400;
    void reject(socket, Response.json({ error: `bad WebSocket handshake: ${err.message}` }, { status }));
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
    const request = toRequest(req);
    if (!request) {
      await reject(socket, Response.json({ error: "bad request: invalid Host header or request target" }, { status: 400 }));
      return;
    }
    expectUpgrade(req);
    let res: Response;
    try {
      res = await root.fetch(request, { incoming: req, outgoing: undefined });
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
