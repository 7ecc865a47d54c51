import type { Server } from "node:http";
import type { Context, Hono } from "hono";
import type { Message } from "../src/envelope.js";
import { checkChannel, checkPublishChannel } from "../src/channel.js";
import { ProtocolError } from "../src/errors.js";
import { DEFAULT_LIMITS, type Limits } from "../src/limits.js";
import type { Backend, Id, StoredMessage } from "./core/backend.js";
import { MemoryBackend } from "./backends/memory.js";
import { Hub } from "./core/hub.js";
import type { Identity } from "./core/targeting.js";
import { Outgoing } from "./core/outgoing.js";
import { createRoutes } from "./http/routes.js";
import { Subscriber } from "./core/subscriber.js";
import type { StatusData } from "../src/envelope.js";
import { attach, listen, type Listening } from "./node/listen.js";

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
   * Origins allowed to open a WebSocket: a list (`"*"` for any) or a predicate. Default: requests
   * without an Origin header, and pages from the same host as the request.
   */
  allowedOrigins?: string[] | ((origin: string, c: Context) => boolean);
  /** Enables `POST {base}/publish` with this bearer token. Off without one. */
  publishToken?: string;
  /** Where unexpected errors are reported. Default `console.error`. */
  onError?: (error: unknown) => void;
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

type ResolvedOptions = Required<
  Pick<
    MessageBusOptions,
    "base" | "longPollTimeout" | "heartbeatInterval" | "longPolling" | "chunkedEncoding" | "maxBacklogSize" | "maxBacklogAge" | "maxGlobalBacklogSize"
  >
> &
  MessageBusOptions;

const DAY = 24 * 3600;

/** A subscriber inside the server: sees every message, targeted or not. */
class ServerSubscriber extends Subscriber {
  readonly kind = "server";
  constructor(
    hub: Hub,
    private readonly fn: (m: StoredMessage) => void,
    private readonly report: (e: unknown) => void,
  ) {
    super(hub, { clientId: "server", all: true });
  }
  send(batch: readonly Outgoing[], _status: StatusData | null): void {
    for (const o of batch) {
      if (this.closed) return;
      try {
        this.fn(o.message);
      } catch (e) {
        this.report(e);
      }
    }
  }
  close(): void {
    this.closed = true;
    this.hub.remove(this);
  }
}

/**
 * The server side of cometbus: publish, server-side subscribe, and the routes that carry messages
 * to browsers over poll, long-poll, SSE and WebSocket.
 */
export class MessageBus {
  readonly options: ResolvedOptions;
  readonly limits: Limits;
  readonly backend: Backend;
  readonly hub: Hub;
  /** Held long-polls by client id (message_bus's `__seq` replacement). */
  readonly longPolls = new Map<string, Subscriber & { seq: number }>();
  published = 0;
  private readonly started: Promise<void>;
  private app?: Hono;
  private closing = false;

  constructor(options: MessageBusOptions = {}) {
    this.options = {
      base: "/message-bus",
      longPollTimeout: 25_000,
      heartbeatInterval: 25_000,
      longPolling: true,
      chunkedEncoding: true,
      maxBacklogSize: 1000,
      maxBacklogAge: 7 * DAY,
      maxGlobalBacklogSize: 2000,
      ...stripUndefined(options),
    };
    this.options.base = this.options.base.replace(/\/+$/, "");
    const { maxWsBufferedBytes, ...limits } = options.limits ?? {};
    this.limits = { ...DEFAULT_LIMITS, ...(maxWsBufferedBytes !== undefined ? { maxBufferedBytes: maxWsBufferedBytes } : {}), ...stripUndefined(limits) };
    this.hub = new Hub(this.options.heartbeatInterval, (e) => this.logError(e));
    const backend = options.backend ?? "memory";
    if (typeof backend === "object") {
      this.backend = backend;
      this.started = this.startBackend();
    } else if (backend === "memory") {
      this.backend = new MemoryBackend();
      this.started = this.startBackend();
    } else {
      // Redis and PostgreSQL backends load their drivers only when asked for.
      const lazy = new LazyBackend(backend);
      this.backend = lazy;
      this.started = lazy.load().then(() => this.startBackend());
    }
    this.started.catch((e) => this.logError(e));
  }

  private startBackend(): Promise<void> {
    return this.backend.start({
      message: (m) => {
        this.published++;
        this.hub.publish(new Outgoing(m));
      },
      epoch: (epoch) => this.hub.resetEpoch(epoch),
    });
  }

  /** Resolves once the backend is connected. Every other method waits for it too. */
  ready(): Promise<void> {
    return this.started;
  }

  async publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<Published> {
    checkPublishChannel(channel, this.limits.maxChannelBytes);
    let dataJson: string;
    try {
      dataJson = JSON.stringify(data === undefined ? null : data);
    } catch (e) {
      // Nested too deeply for the stack (RangeError), a BigInt, a cycle: bad input, not a server error.
      throw new ProtocolError(`data is not JSON-serializable: ${e instanceof RangeError ? "nested too deeply" : e instanceof Error ? e.message : e}`);
    }
    if (dataJson.length > this.limits.maxMessageBytes / 3 && Buffer.byteLength(dataJson) > this.limits.maxMessageBytes) {
      throw new ProtocolError(`message too large: at most ${this.limits.maxMessageBytes} bytes of JSON`, 413);
    }
    const ids = (name: string, v: unknown) => {
      if (v === undefined || v === null) return undefined;
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string" || (typeof x === "number" && Number.isFinite(x)))) {
        throw new ProtocolError(`${name} must be an array of strings or numbers`);
      }
      return v as Id[];
    };
    const size = opts.maxBacklogSize ?? this.options.maxBacklogSize;
    const age = opts.maxBacklogAge ?? this.options.maxBacklogAge;
    if (!(size >= 1) || !(age > 0)) throw new ProtocolError("maxBacklogSize must be >= 1 and maxBacklogAge > 0");
    await this.started;
    if (this.closing) throw new Error("cometbus: the bus is closed");
    const m = await this.backend.append({
      channel,
      data: data === undefined ? null : data,
      dataJson,
      user_ids: ids("userIds", opts.userIds),
      group_ids: ids("groupIds", opts.groupIds),
      client_ids: ids("clientIds", opts.clientIds) as string[] | undefined,
      site_id: opts.siteId,
      maxBacklogSize: size,
      maxBacklogAge: age,
      maxGlobalBacklogSize: this.options.maxGlobalBacklogSize,
    });
    return { globalId: m.global_id, messageId: m.message_id };
  }

  /**
   * Calls `fn` for every message on `channel` published by any process, in order, each once.
   * `lastId` as on the wire: -1 (default) new only, k >= 0 everything after k. Returns unsubscribe.
   */
  subscribe(channel: string, fn: (message: StoredMessage) => void, lastId = -1): () => void {
    checkChannel(channel, this.limits.maxChannelBytes);
    const sub = new ServerSubscriber(this.hub, fn, (e) => this.logError(e));
    // A store that is down when this starts is waited out: the subscriber catches up once it is back,
    // then delivers in order (one line in the log per outage, not per attempt).
    const retry = (e: unknown, attempt: number) => {
      if (attempt === 0) this.logError(e);
    };
    this.started
      .then(() =>
        sub.load(this.backend, new Map([[channel, lastId]]), undefined, { page: (p) => sub.send(p.messages, null) }, { pageBytes: 1 << 20, retry }),
      )
      .catch((e) => {
        if (!sub.closed) this.logError(e);
      });
    return () => sub.close();
  }

  /** The channel's retained messages after `lastId`. */
  async backlog(channel: string, lastId = 0): Promise<Message[]> {
    checkChannel(channel, this.limits.maxChannelBytes);
    await this.started;
    return (await this.backend.backlog(channel, lastId)).map(envelope);
  }

  async lastId(channel: string): Promise<number> {
    return (await this.lastIds(channel))[channel];
  }

  async lastIds(...channels: string[]): Promise<Record<string, number>> {
    for (const c of channels) checkChannel(c, this.limits.maxChannelBytes);
    await this.started;
    return Object.fromEntries((await this.backend.snapshot(channels)).lastIds);
  }

  /** Forgets every message and starts a new epoch; connected clients are told (`onReset`). */
  async reset(): Promise<void> {
    await this.started;
    await this.backend.reset();
  }

  /** The Hono app with every route; mount it at `base` (`app.route("/message-bus", bus.routes())`). */
  routes(): Hono {
    return (this.app ??= createRoutes(this));
  }

  /** Serves the routes (and WebSocket upgrades) on node:http. */
  listen(port = 3000, hostname = "127.0.0.1", app?: Hono): Promise<Listening> {
    return listen(this, port, hostname, app);
  }

  /**
   * Handles WebSocket upgrades on a node:http server. `app` is the Hono app the routes are mounted
   * in, so its middleware runs for upgrades too (default: the routes alone at `base`).
   */
  attach(server: Server, app?: Hono): void {
    attach(this, server, app);
  }

  /** Who a request is, as the lookups say. */
  async identify(c: Context, clientId: string): Promise<Identity> {
    const o = this.options;
    const [userId, groupIds, siteId] = await Promise.all([
      o.userIdLookup?.(c),
      o.groupIdsLookup?.(c),
      o.siteIdLookup?.(c),
    ]);
    return { clientId, userId, groupIds, siteId };
  }

  async authorizeAll(c: Context, channels: Iterable<string>): Promise<void> {
    const authorize = this.options.authorize;
    if (!authorize) return;
    for (const ch of channels) {
      if (!(await authorize(c, ch))) throw new ProtocolError(`not allowed to subscribe to "${ch}"`, 403);
    }
  }

  stats() {
    return {
      backend: this.backend.kind,
      epoch: this.backend.epoch,
      channels: this.hub.channelCount,
      subscribers: this.hub.countByKind(),
      published: this.published,
      delivered: this.hub.delivered,
    };
  }

  logError(e: unknown): void {
    (this.options.onError ?? ((x: unknown) => console.error("cometbus:", x)))(e);
  }

  /** Answers held long-polls, ends streams, closes WebSockets, and disconnects the backend. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.hub.close();
    await this.started.catch(() => {});
    await this.backend.close();
  }
}

function envelope(m: StoredMessage): Message {
  return { global_id: m.global_id, message_id: m.message_id, channel: m.channel, data: m.data };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Stands in for a backend whose driver is imported on first use. */
class LazyBackend implements Backend {
  kind = "loading";
  private inner?: Backend;
  constructor(private readonly url: string) {}

  async load(): Promise<void> {
    let mod: { createBackend(url: string): Backend };
    if (/^rediss?:\/\//.test(this.url)) mod = await import("./backends/redis.js" as string);
    else if (/^postgres(ql)?:\/\//.test(this.url)) mod = await import("./backends/postgres.js" as string);
    else throw new Error(`cometbus: unknown backend "${this.url}": use "memory", redis://… or postgres://…`);
    this.inner = mod.createBackend(this.url);
    this.kind = this.inner.kind;
  }
  private get b(): Backend {
    if (!this.inner) throw new Error("cometbus: backend not loaded");
    return this.inner;
  }
  get epoch() {
    return this.b.epoch;
  }
  start(...a: Parameters<Backend["start"]>) {
    return this.b.start(...a);
  }
  append(...a: Parameters<Backend["append"]>) {
    return this.b.append(...a);
  }
  backlog(...a: Parameters<Backend["backlog"]>) {
    return this.b.backlog(...a);
  }
  globalBacklog(...a: Parameters<Backend["globalBacklog"]>) {
    return this.b.globalBacklog(...a);
  }
  snapshot(...a: Parameters<Backend["snapshot"]>) {
    return this.b.snapshot(...a);
  }
  reset() {
    return this.b.reset();
  }
  close() {
    return this.inner ? this.inner.close() : Promise.resolve();
  }
}
