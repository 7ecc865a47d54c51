import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import type { WebSocket } from "ws";
import { truncateUtf8 } from "../../src/text.js";
import type { MessageBus } from "../bus.js";
import { WsSubscriber } from "../transports/websocket.js";

type Accept = (ws: WebSocket) => void;

/**
 * Upgrades pass through the Hono app like any request, so lookups, `authorize` and the app's own
 * middleware see them; the route leaves its verdict here for `attach` to act on.
 */
const pending = new WeakMap<IncomingMessage, Accept | null>();

export function expectUpgrade(req: IncomingMessage): void {
  pending.set(req, null);
}

export function takeUpgrade(req: IncomingMessage): Accept | null {
  const accept = pending.get(req) ?? null;
  pending.delete(req);
  return accept;
}

/**
 * Same host by default, and never a plain-http page onto a secure server: the request is secure
 * when it came over TLS or a proxy says so (`X-Forwarded-Proto: https`, which can only tighten the
 * check). A plain request may come from an https page: a TLS-terminating proxy in front.
 */
function originAllowed(bus: MessageBus, c: Context): boolean {
  const origin = c.req.header("origin");
  if (!origin) return true;
  const allowed = bus.options.allowedOrigins;
  if (typeof allowed === "function") return allowed(origin, c);
  if (allowed) return allowed.includes("*") || allowed.includes(origin);
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.host !== c.req.header("host")?.toLowerCase()) return false;
  const forwarded = c.req.header("x-forwarded-proto")?.split(",")[0].trim().toLowerCase();
  const secure = new URL(c.req.url).protocol === "https:" || forwarded === "https";
  return url.protocol === "https:" || (url.protocol === "http:" && !secure);
}

export async function acceptUpgrade(bus: MessageBus, c: Context): Promise<Response> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket" || !incoming || !pending.has(incoming)) {
    return c.json({ error: "this URL takes a WebSocket upgrade (GET with Upgrade: websocket)" }, 426);
  }
  // A header value holds no control characters (Node refuses them), so only its length needs a bound.
  if (!originAllowed(bus, c)) return c.json({ error: `origin not allowed: ${truncateUtf8(c.req.header("origin") ?? "", 200)}` }, 403);
  const who = await bus.identify(c, c.req.param("clientId")!);
  const ctx = bus.options.authorize ? c : null;
  pending.set(incoming, (ws) => new WsSubscriber(bus, who, ws, ctx));
  return c.body(null, 204);
}
