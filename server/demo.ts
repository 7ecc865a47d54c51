import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { MessageBus } from "./bus.js";
import type { TransportKind } from "./core/subscriber.js";
import { ProtocolError } from "../src/errors.js";

/** `demos/` beside `server/` when run from source (tests), two levels up when run from `dist/server/`. */
const demosDir =
  ["../demos/", "../../demos/"].map((rel) => fileURLToPath(new URL(rel, import.meta.url))).find((d) => existsSync(path.join(d, "compare.html"))) ??
  fileURLToPath(new URL("../../demos/", import.meta.url));

/** The cookie the chat page sets to say who it is (scoped to its own client id's path). */
export const DEMO_USER_COOKIE = "demo_user";

/** A burst from the comparison page is one request; more than this is a mistake, not a demo. */
const MAX_BURST = 1000;

/** What `POST /demo/drop?kind=` can break: subscribers of these kinds. */
const DROPPABLE: Record<string, TransportKind[]> = {
  websocket: ["websocket"],
  sse: ["sse"],
  chunked: ["chunked"],
  "long-poll": ["long-poll"],
  /** Every open stream. */
  streams: ["sse", "chunked"],
  /** Every held poll, chunked or not. */
  polls: ["long-poll", "chunked"],
};

/** The last path segment of the requests that carry each kind of subscriber. */
const ENDPOINT: Partial<Record<TransportKind, string>> = { websocket: "ws", sse: "sse", chunked: "poll", "long-poll": "poll" };

/**
 * The demo server of `npm start`: the bus at its base, the pages of `demos/` at `/`, and routes open
 * to the pages that publish and break things (demo only: never mount them in an app of your own).
 * Unless the bus already has a `userIdLookup`, chat users are who their `demo_user` cookie says.
 */
export function demoApp(bus: MessageBus): Hono {
  bus.options.userIdLookup ??= demoUserId;
  chatHandlers(bus);
  const app = new Hono();
  const connections = new Connections();
  app.use(`${bus.options.base}/:clientId/*`, connections.track);
  app.route(bus.options.base, bus.routes());

  app.post("/demo/publish", async (c) => {
    let body: { channel?: unknown; data?: unknown; user_ids?: unknown; count?: unknown };
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "invalid JSON body" }, 400);
    }
    if (!body || typeof body !== "object") return c.json({ error: 'publish takes {"channel": "/x", "data": …}' }, 400);
    const count = body.count ?? 1;
    if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > MAX_BURST) {
      return c.json({ error: `count must be an integer from 1 to ${MAX_BURST}` }, 400);
    }
    try {
      let last = { globalId: 0, messageId: 0 };
      const start = performance.now();
      // A burst is published in order, one after another, so every pane sees the same sequence. Each
      // copy says how long after the request it was published (`after`, ms), so a page can time the
      // transport rather than the burst.
      for (let i = 0; i < (count as number); i++) {
        const after = Math.round((performance.now() - start) * 100) / 100;
        const data = count === 1 ? body.data : { ...(body.data as object), i, after };
        last = await bus.publish(String(body.channel), data, { userIds: body.user_ids as never });
      }
      return c.json({ global_id: last.globalId, message_id: last.messageId });
    } catch (e) {
      if (e instanceof ProtocolError) return c.json({ error: e.message }, e.status);
      throw e;
    }
  });

  // Pages subscribe from here, so every pane starts at the same position and can count what it misses.
  app.get("/demo/last-id", async (c) => {
    const channel = c.req.query("channel");
    if (!channel) return c.json({ error: "channel is required: /demo/last-id?channel=/x" }, 400);
    try {
      return c.json({ last_id: await bus.lastId(channel), epoch: bus.backend.epoch });
    } catch (e) {
      if (e instanceof ProtocolError) return c.json({ error: e.message }, e.status);
      throw e;
    }
  });

  app.post("/demo/drop", (c) => {
    const kind = c.req.query("kind") ?? "";
    const kinds = DROPPABLE[kind];
    if (!kinds) return c.json({ error: `kind must be one of ${Object.keys(DROPPABLE).join(", ")}` }, 400);
    return c.json({ kind, dropped: connections.drop(bus, kinds) });
  });

  app.post("/demo/reset", async (c) => {
    await bus.reset();
    return c.json({ epoch: bus.backend.epoch });
  });

  app.use("/*", serveStatic({ root: path.relative(process.cwd(), demosDir) || "." }));
  app.notFound((c) => c.json({ error: "not found" }, 404));
  return app;
}

/** Most characters of a chat line. */
const MAX_LINE = 2000;

/**
 * The chat page's requests (README: Requests): `say` publishes a line in the speaker's own name (the
 * server decides who spoke: a client cannot speak for another), privately when it names `to`; the
 * presence channel takes client publishes made in one's own name.
 */
function chatHandlers(bus: MessageBus): void {
  bus.handle("say", async (data, { userId }) => {
    if (userId == null) throw new ProtocolError("join the chat first: no name", 401);
    const { text, to } = (data ?? {}) as { text?: unknown; to?: unknown };
    if (typeof text !== "string" || !text.trim() || [...text].length > MAX_LINE) throw new ProtocolError(`a line is 1-${MAX_LINE} characters of text`);
    if (to !== undefined && (typeof to !== "string" || !to || to.length > 40)) throw new ProtocolError("to is a name");
    const from = String(userId);
    const line = { type: "say", from, text: text.trim(), sentAt: Date.now(), ...(to ? { to } : {}) };
    const { messageId } = await bus.publish("/chat/room", line, to ? { userIds: [to, from] } : {});
    return { messageId };
  });
  bus.options.clientPublish ??= (c, channel, data) => {
    const from = (data as { from?: unknown } | null)?.from;
    return channel === "/chat/presence" && from !== undefined && from === demoUserId(c);
  };
}

/** The chat page's user: a cookie works for every transport, WebSocket upgrades included. */
function demoUserId(c: Context): string | undefined {
  const name = getCookie(c, DEMO_USER_COOKIE)?.trim();
  return name ? name.slice(0, 40) : undefined;
}

/**
 * The socket under each bus request in flight, so the demo can cut connections the way a network
 * does (no close frame, no last chunk) and show the clients recover.
 */
class Connections {
  private readonly active = new Map<Socket, { clientId: string; endpoint: string }>();
  private readonly watched = new WeakSet<Socket>();

  track: MiddlewareHandler = async (c, next) => {
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    const socket = env?.incoming?.socket as Socket | undefined;
    if (socket && !socket.destroyed) {
      const entry = { clientId: c.req.param("clientId") ?? "", endpoint: c.req.path.slice(c.req.path.lastIndexOf("/") + 1) };
      this.active.set(socket, entry);
      if (!this.watched.has(socket)) {
        this.watched.add(socket);
        socket.once("close", () => this.active.delete(socket));
      }
      // Keep-alive sockets carry one request after another: forget this one when it is answered.
      env?.outgoing?.once("close", () => {
        if (this.active.get(socket) === entry) this.active.delete(socket);
      });
    }
    await next();
  };

  /** Destroys the sockets of every subscriber of these kinds; returns how many. */
  drop(bus: MessageBus, kinds: TransportKind[]): number {
    // client id → the endpoints its subscribers of these kinds are held on
    const wanted = new Map<string, Set<string>>();
    for (const s of bus.hub.subscribers) {
      const endpoint = kinds.includes(s.kind) ? ENDPOINT[s.kind] : undefined;
      if (!endpoint) continue;
      let set = wanted.get(s.who.clientId);
      if (!set) wanted.set(s.who.clientId, (set = new Set()));
      set.add(endpoint);
    }
    let dropped = 0;
    for (const [socket, { clientId, endpoint }] of this.active) {
      if (!wanted.get(clientId)?.has(endpoint)) continue;
      this.active.delete(socket);
      socket.destroy();
      dropped++;
    }
    return dropped;
  }
}
