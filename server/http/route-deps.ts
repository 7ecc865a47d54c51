import type { Context } from "hono";
import type { Identity } from "../core/targeting.js";
import type { TransportContext } from "../transports/context.js";
import type { Exchange, WsPeer, WsSocket } from "../transports/io.js";

/** What the routes need of the bus (the facade gives it; the routes never see MessageBus). */
export interface RouteBus {
  readonly transports: TransportContext;
  readonly publishToken?: string;
  readonly allowedOrigins?: string[] | ((origin: string, c: Context) => boolean);
  /** Whether an `authorize` hook is set (a WebSocket then keeps its upgrade request for later subscribes). */
  readonly authorizes: boolean;
  /** Whether a lookup or `authorize` reads the request (then every request goes through Hono, for its Context). */
  readsRequests(): boolean;
  identify(c: Context, clientId: string): Promise<Identity>;
  authorizeAll(c: Context, channels: Iterable<string>): Promise<void>;
  publish(channel: string, data: unknown, opts: { userIds?: unknown; groupIds?: unknown; clientIds?: unknown }): Promise<{ globalId: number; messageId: number }>;
  stats(): object;
  /** `GET {base}/metrics`, when on: the bearer token it asks for (none: open), and the exposition. */
  readonly metrics?: { token?: string; scrape(): Promise<{ type: string; body: string }> };
  /** The browser bundle's text, or null when it is not built. */
  clientBundle(): string | null;
  /** Whether request handlers or client publishing are set up (a WebSocket then keeps its upgrade's Context for them). */
  takesRequests(): boolean;
  /** Draining: every answer closes its connection, the health check fails. */
  draining(): boolean;
  /** Draining, or about to: the health check fails. */
  leaving(): boolean;
  /**
   * Non-null when a new request is refused now (load shedding): how long to wait, and why. `held`:
   * it would hold a connection (a long-poll, a stream, a socket), which a connection limit counts.
   */
  shed(held: boolean): { retryAfterMs: number; why: string } | null;
}

/** What the routes need of the runtime serving them. */
export interface RouteRuntime {
  exchange(c: Context): Exchange;
  /** Counts the request against its connection; false when the connection had too many waiting (it is closed). */
  admit(c: Context, maxQueued: number): boolean;
  /** After the answer: a body left unread while the answer waits behind another is discarded. */
  discardUnreadBody(c: Context): void;
  /** Whether the client left (its body read failed because it went). */
  clientLeft(c: Context): boolean;
  /** Whether this request is a WebSocket upgrade this runtime can take. */
  canUpgrade(c: Context): boolean;
  /** Takes the upgrade: `open` makes the subscriber once the socket is up. */
  upgrade(c: Context, open: (socket: WsSocket) => WsPeer): Response;
}
