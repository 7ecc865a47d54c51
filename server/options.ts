import type { Context } from "hono";
import type { Registry } from "prom-client";
import { DEFAULT_LIMITS, type Limits } from "../src/limits.js";
import type { Backend, Id } from "./core/backend.js";

type Maybe<T> = T | Promise<T>;

export interface MessageBusOptions {
  /** `"memory"` (default), a `redis://` or `postgres://` URL, or a Backend instance. */
  backend?: "memory" | string | Backend;
  /** Where the routes are mounted; used by `listen` and `attach`. Default `/message-bus`. */
  base?: string;
  /** How long a long-poll is held before it answers `[]`, in ms. Default 25000. */
  longPollTimeout?: number;
  /** SSE comment / WebSocket `[]` heartbeat interval in ms. Default 25000. */
  heartbeatInterval?: number;
  /** Long-polling enabled (otherwise every poll answers at once, like `?dlp=t`). Default true. */
  longPolling?: boolean;
  /** Chunked long-poll answers when the client allows it. Default true. */
  chunkedEncoding?: boolean;
  /** Default per-channel backlog size. Default 1000. */
  maxBacklogSize?: number;
  /** Default per-message backlog age in seconds. Default 7 days. */
  maxBacklogAge?: number;
  /** Global backlog size. Default 2000. */
  maxGlobalBacklogSize?: number;
  /** Size and count limits (README, "Options"). `maxWsBufferedBytes` is the old name of `maxBufferedBytes`. */
  limits?: Partial<Limits> & { maxWsBufferedBytes?: number };
  /** The user a request belongs to (message_bus's user_id_lookup). */
  userIdLookup?: (c: Context) => Maybe<Id | null | undefined>;
  /** The groups a request's user belongs to. */
  groupIdsLookup?: (c: Context) => Maybe<Id[] | null | undefined>;
  /** The site a request belongs to (multisite). */
  siteIdLookup?: (c: Context) => Maybe<string | null | undefined>;
  /** May refuse a channel to a request (403 / close 1008). */
  authorize?: (c: Context, channel: string) => Maybe<boolean>;
  /**
   * Whether a client may publish `data` to `channel` (`publish` in the browser, docs/protocol.md#12-requests):
   * `true` publishes it; publish options (`{ userIds: [7] }`) publish it targeted; anything else
   * refuses it with 403. Default: every client publish is refused.
   */
  clientPublish?: (c: Context, channel: string, data: unknown) => Maybe<boolean | PublishOptions | null | undefined>;
  /** ms a request handler may take before the request is answered 504. Default 10000. */
  handlerTimeout?: number;
  /** ms replies are kept after a client's last request, so a retry is answered, not run again. Default 300000. */
  replyKeepMs?: number;
  /** Replies kept per client (its latest request ids); an older id is answered 409. Default 256. */
  maxStoredReplies?: number;
  /**
   * Origins allowed to open a WebSocket: a list (`"*"` for any) or a predicate. Default: requests
   * without an Origin header, and pages from the same host as the request.
   */
  allowedOrigins?: string[] | ((origin: string, c: Context) => boolean);
  /** Enables `POST {base}/publish` with this bearer token. Off without one. */
  publishToken?: string;
  /**
   * Prometheus metrics (README, "Metrics"): `true` or options enable `GET {base}/metrics`; `token`
   * requires `Authorization: Bearer <token>` there (default: the publish token, if any); `registry`
   * registers them in the app's own prom-client registry too (then `route: false` leaves the
   * endpoint off). prom-client is loaded only when this is set. Default off.
   */
  metrics?: boolean | { token?: string; registry?: Registry; route?: boolean };
  /** Where unexpected errors are reported. Default `console.error`. */
  onError?: (error: unknown) => void;
  /**
   * The private fields of Node and `ws` cometbus uses for speed where they exist (probed once,
   * server/node/fast-paths.ts); `false` uses the plain ways everywhere. Default true.
   */
  fastPaths?: boolean;
  /**
   * The most a busy process holds a flush, in ms: when the last flush to the connections took half
   * the time between publishes or more, the next one waits up to this long, so each connection gets
   * the messages of that while in one write. An idle process flushes at once. 0 never holds. Default 10.
   */
  flushDelay?: number;
  /**
   * WebSocket permessage-deflate for clients that offer it (every browser does): each live message
   * is compressed once and the same bytes go to every such socket. `true`, or `{ threshold }` (bytes
   * below which a message goes uncompressed, default 256). Default false.
   */
  perMessageDeflate?: boolean | { threshold?: number };
  /**
   * Reconnections per second this process asks its clients to keep to when it goes away without a
   * drain (a crash, a shutdown): each is told to wait a random moment within connections / rate
   * seconds (at most 30 s). Default 500 (a reconnect costs about 1 ms of a core).
   */
  reconnectRate?: number;
  /** How long `drain()` (and the CLI's SIGTERM) spreads telling connections to move, in ms. Default 10000. */
  drainWindow?: number;
  /**
   * How long `drain()` fails the health check while still serving as usual, before it tells anyone
   * to move: the load balancer's time to notice (its health-check interval × threshold, or
   * Kubernetes' endpoint propagation). Default 0.
   */
  drainDelay?: number;
  /** New connections past this many are refused (503 + Retry-After, WebSocket close 1013); held ones are served. Default none. */
  maxConnections?: number;
  /** New connections while the event loop lags more than this (ms) are refused, as over maxConnections. Default none. */
  maxEventLoopLagMs?: number;
  /** What a refused connection is told to wait, in ms (the client waits between this and twice this). Default 5000. */
  shedRetryAfterMs?: number;
}

export interface PublishOptions {
  userIds?: Id[];
  groupIds?: Id[];
  clientIds?: string[];
  siteId?: string;
  maxBacklogSize?: number;
  maxBacklogAge?: number;
}

export interface Published {
  globalId: number;
  messageId: number;
}

export type ResolvedOptions = Required<
  Pick<
    MessageBusOptions,
    | "base"
    | "longPollTimeout"
    | "heartbeatInterval"
    | "longPolling"
    | "chunkedEncoding"
    | "maxBacklogSize"
    | "maxBacklogAge"
    | "maxGlobalBacklogSize"
    | "reconnectRate"
    | "flushDelay"
    | "drainWindow"
    | "drainDelay"
    | "shedRetryAfterMs"
    | "handlerTimeout"
    | "replyKeepMs"
    | "maxStoredReplies"
  >
> &
  MessageBusOptions;

const DAY = 24 * 3600;

/** The options with their defaults, and the limits (the old name `maxWsBufferedBytes` still taken). */
export function resolveOptions(options: MessageBusOptions): { options: ResolvedOptions; limits: Limits } {
  const resolved: ResolvedOptions = {
    base: "/message-bus",
    longPollTimeout: 25_000,
    heartbeatInterval: 25_000,
    longPolling: true,
    chunkedEncoding: true,
    maxBacklogSize: 1000,
    maxBacklogAge: 7 * DAY,
    maxGlobalBacklogSize: 2000,
    reconnectRate: 500,
    flushDelay: 10,
    drainWindow: 10_000,
    drainDelay: 0,
    shedRetryAfterMs: 5000,
    handlerTimeout: 10_000,
    replyKeepMs: 300_000,
    maxStoredReplies: 256,
    ...stripUndefined(options),
  };
  resolved.base = resolved.base.replace(/\/+$/, "");
  const { maxWsBufferedBytes, ...given } = options.limits ?? {};
  const limits = { ...DEFAULT_LIMITS, ...(maxWsBufferedBytes !== undefined ? { maxBufferedBytes: maxWsBufferedBytes } : {}), ...stripUndefined(given) };
  // Otherwise a message that may be published could never be written to a stream: every attempt
  // would cut it, and its client would come back for the same message forever.
  if (limits.maxBufferedBytes < limits.maxMessageBytes) {
    throw new RangeError(`cometbus: limits.maxBufferedBytes (${limits.maxBufferedBytes}) must be at least limits.maxMessageBytes (${limits.maxMessageBytes})`);
  }
  // NaN or a negative hold would answer every long-poll at once, or (held for a NaN deadline) never.
  if (!(resolved.longPollTimeout >= 0)) throw new RangeError(`cometbus: longPollTimeout must be a number of ms ≥ 0 (Infinity: held until something is due), not ${resolved.longPollTimeout}`);
  deflateSettings(resolved.perMessageDeflate);
  return { options: resolved, limits };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Frames shorter than this go uncompressed: compressed once for every socket, a short message still pays; a tiny one does not. */
const DEFLATE_THRESHOLD = 256;

/** The `perMessageDeflate` option as the WebSocket adapter takes it: null when off. */
export function deflateSettings(option: MessageBusOptions["perMessageDeflate"]): { threshold: number } | null {
  if (!option) return null;
  const threshold = option === true ? DEFLATE_THRESHOLD : (option.threshold ?? DEFLATE_THRESHOLD);
  if (!(threshold >= 0)) throw new RangeError(`cometbus: perMessageDeflate.threshold must be a number of bytes ≥ 0, not ${threshold}`);
  return { threshold };
}
