import type { Context } from "hono";
import type { RouteRuntime } from "../http/route-deps.js";
import type { BunSocketData } from "./ws-socket.js";
import type { BunServer } from "./types.js";

/** The Bun server a request came through, as `bunListen` hands it to the app. */
export function bunServerOf(c: Context): BunServer | undefined {
  return (c.env as { bun?: BunServer } | undefined)?.bun;
}

/**
 * The routes' runtime on `Bun.serve`: requests as web-standard ones (`base`, itself falling back to
 * them), WebSocket upgrades taken by Bun's own server. A request that did not come through
 * `bunListen` is `base`'s to answer.
 */
export function bunRuntime(base: RouteRuntime): RouteRuntime {
  return {
    ...base,
    canUpgrade: (c) => !!bunServerOf(c) || base.canUpgrade(c),
    upgrade: (c, open) => {
      const server = bunServerOf(c);
      if (!server) return base.upgrade(c, open);
      const data: BunSocketData = { open };
      if (server.upgrade(c.req.raw, { data })) return new Response(null);
      return c.json({ error: "bad WebSocket handshake" }, 400);
    },
  };
}
