import { STATUS_CODES, type IncomingMessage, type Server } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Hono } from "hono";
import { WebSocketServer } from "ws";
import type { DrainOptions } from "../http/listening.js";
import type { RouteBus } from "../http/route-deps.js";
import type { ByteMeter } from "./byte-meter.js";
import type { FastPaths } from "./fast-paths.js";
import { type DeflateSettings, wsDeflateOptions } from "./ws-deflate.js";
import { expectUpgrade, takeUpgrade } from "./upgrade.js";
import { explainingWebSocket } from "./ws-frames.js";
import { NodeWsSocket } from "./ws-socket.js";

export type { DrainOptions };

/** What `listen` and `attach` need of the bus (the facade gives it; the adapter never sees MessageBus). */
export interface NodeLink {
  readonly base: string;
  readonly maxFrameBytes: number;
  readonly fast: FastPaths;
  /** permessage-deflate (ws-deflate.ts), null when off. */
  readonly deflate: DeflateSettings | null;
  /** Counts the bytes written, when metrics are on. */
  readonly meter?: ByteMeter;
  /** The routes mounted at `base` in an app of their own, for when no app is given. */
  mounted(): Hono;
  /** What the routes use of the bus (the direct poll path uses it too). */
  routeBus(): RouteBus;
  report(e: unknown): void;
  /** Closes the bus: held polls answered, streams ended, sockets closed, the store let go. */
  close(): Promise<void>;
  /** The bus's drain: connections told to move, spread over the window. */
  drain(options?: DrainOptions): Promise<void>;
}

/** How `attach` serves upgrades inside another framework's server. */
export interface AttachOptions {
  /** The Hono app the routes are mounted in (default: the routes alone at `base`). */
  app?: Hono;
  /**
   * Runs for each upgrade before the routes see it: what the app's own middleware would have done for
   * an ordinary request (read the session cookie, say), which node:http's upgrades skip. Its result is
   * `c.env.context` for the lookups; it may also set fields on `req` (`c.env.incoming`).
   */
  context?: (req: IncomingMessage) => unknown;
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

/**
 * Handles WebSocket upgrades on a node:http server: each passes through the Hono `app` (so its
 * middleware, the lookups and `authorize` see it), and the socket is taken if the route said yes.
 */
export function attach(link: NodeLink, server: Server, { app, context }: AttachOptions = {}): void {
  const root = app ?? link.mounted();
  const wss = new WebSocketServer({
    noServer: true,
    // ws closes an oversized frame with 1009 but no reason; up to this ceiling the frame is read and
    // refused by WsSubscriber with a reason that says the limit. Beyond it ws's bare 1009 still guards memory.
    maxPayload: link.maxFrameBytes * 4,
    perMessageDeflate: wsDeflateOptions(link.deflate, link.fast.sharedFrames),
    clientTracking: false,
    WebSocket: explainingWebSocket(link.maxFrameBytes),
  });
  // A handshake ws refuses (no key, another version) is answered as every bad request is: JSON.
  wss.on("wsClientError", (err: Error, socket: Duplex) => {
    const status = err.message === "Invalid HTTP method" ? 405 : 400;
    void reject(socket, Response.json({ error: `bad WebSocket handshake: ${err.message}` }, { status }));
  });
  const prefix = link.base + "/";
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
        socket.on("error", destroySelf);
        await reject(socket, Response.json({ error: "not found" }, { status: 404 }));
      }
      return;
    }
    socket.on("error", destroySelf);
    link.meter?.track(socket as Socket);
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
      res = await root.fetch(request, { incoming: req, outgoing: undefined, context: context ? await context(req) : undefined });
    } catch (e) {
      link.report(e);
      res = Response.json({ error: "internal error" }, { status: 500 });
    }
    const open = takeUpgrade(req);
    if (!open || socket.destroyed) return reject(socket, res);
    wss.handleUpgrade(req, socket, head, (ws) => {
      const wrapped = new NodeWsSocket(ws, link.fast, link.deflate);
      try {
        wrapped.connect(open(wrapped));
      } catch (e) {
        link.report(e);
        wrapped.close(1011, "server error");
      }
    });
  }));
  server.on("close", () => wss.close());
}

/**
 * An upgrade's socket that fails is destroyed. Not a closure made in the upgrade listener: that
 * would share the listener's context (the upgrade's web Request, the Hono Context, the app's
 * answer) and keep all of it alive, through the socket, for as long as the WebSocket is open.
 */
function destroySelf(this: Duplex): void {
  this.destroy();
}

/** cometbus's own upgrade listeners, so an upgrade nobody else listens for can be refused. */
const ownListeners = new WeakSet<Function>();
const busPrefixes = new WeakMap<Server, string[]>();
export function ownUpgradeListener<F extends Function>(f: F): F {
  ownListeners.add(f);
  return f;
}
