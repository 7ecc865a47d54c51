import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Hono } from "hono";
import { truncateUtf8 } from "../../src/text.js";
import { type Served, serverUrl } from "../http/listening.js";
import { attach, type DrainOptions, type NodeLink, ownUpgradeListener } from "./attach.js";
import { withDirectPolls } from "./direct-poll.js";
import { requestListener } from "./request-listener.js";

/** A server on node:http (`server` is it: its events and sockets are the app's to watch). */
export interface Listening extends Served {
  server: Server;
}

/** Serves `app` (default: the bus's routes at its base) on node:http, WebSocket upgrades included. */
export async function listen(link: NodeLink, port: number, hostname: string, app?: Hono): Promise<Listening> {
  const root = app ?? link.mounted();
  const routes = requestListener(root, (e) => link.report(e));
  // The bus's own app: nothing of the app's would run for a poll, so polls may skip Hono.
  const listener = app ? routes : withDirectPolls(link, routes);
  const server = createServer(listener);
  const meter = link.meter;
  if (meter) server.on("connection", (socket: Socket) => meter.track(socket));
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
  attach(link, server, { app: root });
  const spare = spareSockets(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  // Once: no new connection from now on (Node closes the idle keep-alive ones too); resolves when none is left.
  let stopped: Promise<void> | undefined;
  const stopAccepting = () => (stopped ??= new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    runtime: "node",
    server,
    port: actual,
    url: serverUrl(hostname, actual),
    async drain(options) {
      await link.drain({ ...options, onMove: () => void stopAccepting() });
    },
    async close() {
      await link.close();
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
        void stopAccepting().then(() => {
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
  // One listener for all, reading `this`: a closure per connection and per request (each wrapped by
  // Node's `once`) was most of what an idle stream or held poll kept beyond bare node:http (~0.85 KB).
  function forget(this: Socket) {
    sockets.delete(this);
  }
  function done(this: ServerResponse) {
    busy.delete(this.req.socket);
  }
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", forget);
  });
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    busy.add(req.socket);
    res.on("close", done);
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

