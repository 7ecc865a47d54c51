import type { Context } from "hono";
import { checkClientId } from "../../src/channel.js";
import { truncateUtf8 } from "../../src/text.js";
import { WS_CLOSE } from "../../src/wire.js";
import { WsSubscriber } from "../transports/websocket.js";
import type { RouteBus, RouteRuntime } from "./route-deps.js";

/**
 * Same host by default, and never a plain-http page onto a secure server: the request is secure
 * when it came over TLS or a proxy says so (`X-Forwarded-Proto: https`, which can only tighten the
 * check). A plain request may come from an https page: a TLS-terminating proxy in front.
 */
function originAllowed(allowed: RouteBus["allowedOrigins"], c: Context): boolean {
  const origin = c.req.header("origin");
  if (!origin) return true;
  if (typeof allowed === "function") return allowed(origin, c);
  if (allowed) return allowed.includes("*") || allowed.includes(origin);
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  // The Origin leaves out its scheme's default port; a Host header may not.
  const host = c.req.header("host")?.toLowerCase().replace(url.protocol === "https:" ? /:443$/ : /:80$/, "");
  if (url.host !== host) return false;
  const forwarded = c.req.header("x-forwarded-proto")?.split(",")[0].trim().toLowerCase();
  const secure = new URL(c.req.url).protocol === "https:" || forwarded === "https";
  return url.protocol === "https:" || (url.protocol === "http:" && !secure);
}

/**
 * `GET {base}/{clientId}/ws`: upgrades pass through the Hono app like any request, so lookups,
 * `authorize` and the app's own middleware see them; the runtime takes the socket if this route
 * says yes, and hands its frames to the subscriber made here.
 */
export async function wsRoute(bus: RouteBus, runtime: RouteRuntime, c: Context): Promise<Response> {
  const clientId = checkClientId(c.req.param("clientId"));
  const upgrading = c.req.header("upgrade")?.toLowerCase() === "websocket" && runtime.canUpgrade(c);
  if (!upgrading) return c.json({ error: "this URL takes a WebSocket upgrade (GET with Upgrade: websocket)" }, 426);
  // A header value holds no control characters (Node refuses them), so only its length needs a bound.
  if (!originAllowed(bus.allowedOrigins, c)) return c.json({ error: `origin not allowed: ${truncateUtf8(c.req.header("origin") ?? "", 200)}` }, 403);
  const shed = bus.shed(true);
  if (shed) {
    // A browser sees no HTTP status of a refused upgrade, only a close: the socket is taken and closed 1013.
    return runtime.upgrade(c, (socket) => {
      socket.close(WS_CLOSE.tryAgainLater, `${shed.why}: retry after ${Math.round(shed.retryAfterMs)} ms`);
      return { receive() {}, gone() {} };
    });
  }
  const who = await bus.identify(c, clientId);
  // Kept only when an `authorize` hook needs the upgrade request later, for each subscribe.
  const authorize = bus.authorizes ? (channels: Iterable<string>) => bus.authorizeAll(c, channels) : null;
  // Kept too when the app takes requests: its handlers get the upgrade's Context as `ctx.c`.
  const origin = bus.takesRequests() ? c : null;
  return runtime.upgrade(c, (socket) => new WsSubscriber(bus.transports, who, socket, authorize, origin));
}
