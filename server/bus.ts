import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Context, Hono } from "hono";
import type { Registry } from "prom-client";
import { checkChannel, checkPublishChannel, isEpoch } from "../src/channel.js";
import type { Message } from "../src/envelope.js";
import { ProtocolError } from "../src/errors.js";
import type { Limits } from "../src/limits.js";
import { quote, utf8Length } from "../src/text.js";
import { openBackend } from "./backends/load.js";
import { MemoryLedger } from "./backends/memory-ledger.js";
import { type Backend, BackendUnavailableError, BusClosedError, type Id, type StoredMessage } from "./core/backend.js";
import { Hub } from "./core/hub.js";
import { Outgoing } from "./core/outgoing.js";
import { type Handler, type RequestContext, RequestRunner } from "./core/requests.js";
import { ServerSubscriber } from "./core/server-subscriber.js";
import type { Identity } from "./core/targeting.js";
import type { RouteBus } from "./http/route-deps.js";
import { createRoutes, mountRoutes } from "./http/routes.js";
import { attach, type AttachOptions, type DrainOptions, type NodeLink } from "./node/attach.js";
import { type NodeHandler, NodeServe } from "./node/handler.js";
import { type FastPaths, NO_FAST_PATHS, probeFastPaths } from "./node/fast-paths.js";
import { ByteMeter } from "./node/byte-meter.js";
import { LagMonitor } from "./node/lag-monitor.js";
import type { Listening } from "./node/listen.js";
import { listenOnRuntime, nodeRuntime, routeRuntime } from "./runtimes.js";
import { clientBundle } from "./client-bundle.js";
import { deflateSettings, type MessageBusOptions, type PublishOptions, type Published, type ResolvedOptions, resolveOptions } from "./options.js";
import type { HeldPollSlot, TransportContext } from "./transports/context.js";

export type { MessageBusOptions, PublishOptions, Published } from "./options.js";
export type { AttachOptions, DrainOptions } from "./node/attach.js";
export type { NodeHandler } from "./node/handler.js";
export type { RequestContext } from "./core/requests.js";

/** Within how long a client told to move (a drain) reconnects: the drain itself spreads them wider. */
const DRAIN_HINT_MS = 1000;
/** The widest a crash's reconnections are spread. */
const MAX_SPREAD_MS = 30_000;
/** How long the spread hint remembers a peak of connections. */
const PEAK_HOLD_MS = 30_000;
/** How long close() waits for the publishes under way. */
const CLOSE_WAIT_MS = 5000;

/**
 * The server side of cometbus: publish, server-side subscribe, and the routes that carry messages
 * to browsers over poll, long-poll, SSE and WebSocket. A facade: the layers below know nothing of
 * it; it hands each the little it needs (docs/protocol.md says what goes over the wire).
 */
export class MessageBus {
  readonly options: ResolvedOptions;
  readonly limits: Limits;
  readonly backend: Backend;
  readonly hub: Hub;
  /** Held long-polls by slot (message_bus's `__seq` replacement, per client id and identity). */
  readonly longPolls = new Map<string, HeldPollSlot>();
  published = 0;
  private refused = 0;
  private peakConnections = 0;
  private peakAt = 0;
  private readonly started: Promise<void>;
  private readonly transports: TransportContext;
  private readonly fast: FastPaths;
  private app?: Hono;
  private served?: NodeServe;
  private closing = false;
  /** Set by drain(): the health check fails from then on. */
  private leaving?: Promise<void>;
  /** Set once drain()'s delay is over: new connections are told to move at once. */
  private draining = false;
  /** Publishes not yet acknowledged: close() waits for them, so none acknowledged is lost. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly lag?: LagMonitor;
  private readonly meter?: ByteMeter;
  private registry?: Promise<Registry>;
  private readonly handlers = new Map<string, Handler>();
  private readonly runner: RequestRunner;

  constructor(options: MessageBusOptions = {}) {
    ({ options: this.options, limits: this.limits } = resolveOptions(options));
    this.hub = new Hub(this.options.heartbeatInterval, (e) => this.logError(e), this.options.flushDelay);
    this.fast = this.options.fastPaths === false ? NO_FAST_PATHS : probeFastPaths();
    const { backend, loaded } = openBackend(this.options.backend ?? "memory");
    this.backend = backend;
    const badEpoch = (epoch: unknown) =>
      new Error(`cometbus: the ${backend.kind} backend's epoch ${quote(epoch)} is not 1-64 characters of A-Z a-z 0-9 _ -`);
    this.started = loaded
      .then(() =>
        backend.start({
          message: (m) => {
            this.published++;
            this.hub.publish(Outgoing.of(m));
          },
          epoch: (epoch) => {
            if (!isEpoch(epoch)) this.logError(badEpoch(epoch));
            this.hub.resetEpoch(epoch);
          },
        }),
      )
      .then(() => {
        if (!isEpoch(backend.epoch)) throw badEpoch(backend.epoch);
      });
    this.started.catch((e) => this.logError(e));
    const o = this.options;
    this.runner = this.requestRunner();
    this.transports = {
      hub: this.hub,
      backend,
      limits: this.limits,
      longPollTimeout: o.longPollTimeout,
      longPolling: o.longPolling,
      chunkedEncoding: o.chunkedEncoding,
      longPolls: this.longPolls,
      report: (e) => this.logError(e),
      drainHint: () => (this.draining ? DRAIN_HINT_MS : null),
      spreadMs: () => this.spreadMs(),
      requests: this.runner,
    };
    if (o.maxEventLoopLagMs || o.metrics) this.lag = new LagMonitor();
    if (o.metrics) {
      this.meter = new ByteMeter();
      const given = typeof o.metrics === "object" ? o.metrics : {};
      // Registered at once in an app's own registry: its endpoint shows them from the first scrape.
      if (given.registry) void this.metricsRegistry().catch((e) => this.logError(e));
    }
  }

  /** Runs client requests with the handlers registered by `handle`. */
  private requestRunner(): RequestRunner {
    // A store without a ledger of its own: replies kept in this process.
    const ledger = this.backend.ledger ?? new MemoryLedger();
    const o = this.options;
    return new RequestRunner({
      ledger,
      handlers: this.handlers,
      publish: (c, _who, channel, data) => this.clientPublish(c as Context, channel, data),
      timeoutMs: o.handlerTimeout,
      keepMs: o.replyKeepMs,
      window: o.maxStoredReplies,
      maxInFlight: this.limits.maxRequestsInFlight,
      perSecond: this.limits.maxRequestsPerSecond,
      maxReplyBytes: this.limits.maxMessageBytes,
      report: (e) => this.logError(e),
    });
  }

  /**
   * Answers the clients' `request(method, data)` (docs/protocol.md#12-requests): `fn` runs once per
   * request, one request of a client at a time, in the order the client made them; what it returns
   * (JSON) is the reply. A `ProtocolError` it throws is answered with its status and message; any
   * other error with 500 and nothing more (the error goes to `onError`). Returns an unregister function.
   * Register handlers before connections come: a WebSocket keeps its upgrade's Context for them only then.
   */
  handle(method: string, fn: (data: unknown, ctx: RequestContext<Context>) => unknown): () => void {
    if (typeof method !== "string" || !method || method.startsWith("__")) throw new Error(`cometbus: bad method name ${quote(method)} (names starting with __ are the protocol's)`);
    if (this.handlers.has(method)) throw new Error(`cometbus: a handler for ${quote(method)} is already registered`);
    this.handlers.set(method, fn as Handler);
    return () => {
      if (this.handlers.get(method) === fn) this.handlers.delete(method);
    };
  }

  /** A client's publish, as `clientPublish` allows it; refused with 403 otherwise. */
  private async clientPublish(c: Context, channel: unknown, data: unknown): Promise<Published> {
    const ch = checkPublishChannel(channel, this.limits.maxChannelBytes);
    const verdict = this.options.clientPublish ? await this.options.clientPublish(c, ch, data) : false;
    if (!verdict) throw new ProtocolError(`publishing to ${quote(ch)} is not allowed`, 403);
    return this.publish(ch, data, verdict === true ? {} : verdict);
  }

  /**
   * How widely this process's clients should spread their reconnection when it goes without a word:
   * its connections at `reconnectRate` per second, at most 30 s. Counted as the peak of the last
   * half minute: long-polls answered together are between requests for a moment, yet all come back.
   */
  spreadMs(): number {
    const n = this.hub.connections;
    const now = Date.now();
    if (n >= this.peakConnections || now - this.peakAt > PEAK_HOLD_MS) {
      this.peakConnections = n;
      this.peakAt = now;
    }
    return Math.min(MAX_SPREAD_MS, Math.round((1000 * this.peakConnections) / this.options.reconnectRate));
  }

  /**
   * Before a shutdown: the health check fails at once; after `delay` ms (the load balancer's time to
   * see it) every connection is told to move (reconnect elsewhere, within a second, from its
   * positions), a batch every 100 ms over `window` ms, so the other processes take them at an even
   * rate. New connections from then on are told at once; publishes go on. Resolves when every
   * connection was told; then close(). `Listening.drain` also stops taking new connections then.
   */
  drain(options: DrainOptions = {}): Promise<void> {
    const { window = this.options.drainWindow, delay = this.options.drainDelay, onMove } = options;
    return (this.leaving ??= (async () => {
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      onMove?.();
      this.draining = true;
      await this.hub.drain(window, DRAIN_HINT_MS);
    })());
  }

  /** Whether new connections are refused now (too many, or the loop lags), and what they are told. */
  private shed(held: boolean): { retryAfterMs: number; why: string } | null {
    const o = this.options;
    const retryAfterMs = o.shedRetryAfterMs;
    // A plain poll holds no connection: only a lagging loop refuses it.
    if (held && o.maxConnections !== undefined && this.hub.connections >= o.maxConnections) {
      this.refused++;
      return { retryAfterMs, why: `overloaded: ${this.hub.connections} connections (at most ${o.maxConnections})` };
    }
    if (this.lag && o.maxEventLoopLagMs && this.lag.lagMs > o.maxEventLoopLagMs) {
      this.refused++;
      return { retryAfterMs, why: `overloaded: the event loop lags ${Math.round(this.lag.lagMs)} ms` };
    }
    return null;
  }

  /** Resolves once the backend is connected. Every other method waits for it too. */
  ready(): Promise<void> {
    return this.started;
  }

  async publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<Published> {
    try {
      const r = await this.store(channel, data, opts);
      this.hub.tally.published++;
      return r;
    } catch (e) {
      const tally = this.hub.tally;
      if (e instanceof BackendUnavailableError) tally.storeUnavailable.publish++;
      tally.publishFailures[e instanceof ProtocolError ? "invalid" : this.closing ? "closed" : "store"]++;
      throw e;
    }
  }

  private async store(channel: string, data: unknown, opts: PublishOptions): Promise<Published> {
    checkPublishChannel(channel, this.limits.maxChannelBytes);
    let dataJson: string;
    try {
      dataJson = JSON.stringify(data === undefined ? null : data);
    } catch (e) {
      // Nested too deeply for the stack (RangeError), a BigInt, a cycle: bad input, not a server error.
      throw new ProtocolError(`data is not JSON-serializable: ${e instanceof RangeError ? "nested too deeply" : e instanceof Error ? e.message : e}`);
    }
    if (dataJson.length > this.limits.maxMessageBytes / 3 && utf8Length(dataJson) > this.limits.maxMessageBytes) {
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
    if (this.closing) throw new BusClosedError();
    const appended = this.backend.append({
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
    this.inFlight.add(appended);
    try {
      const m = await appended;
      return { globalId: m.global_id, messageId: m.message_id };
    } finally {
      this.inFlight.delete(appended);
    }
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
      .then(() => sub.load(this.backend, new Map([[channel, lastId]]), undefined, { page: (p) => sub.send(p.messages) }, { pageBytes: 1 << 20, retry }))
      .catch((e) => {
        if (!sub.closed) this.logError(e);
      });
    return () => sub.close();
  }

  /** The channel's retained messages after `lastId`. */
  async backlog(channel: string, lastId = 0): Promise<Message[]> {
    checkChannel(channel, this.limits.maxChannelBytes);
    await this.started;
    return (await this.backend.backlog(channel, lastId)).map(({ global_id, message_id, channel, data }) => ({ global_id, message_id, channel, data }));
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
    return (this.app ??= createRoutes(this.routeBus(), routeRuntime(nodeRuntime(this.fast), (e) => this.logError(e))));
  }

  /** Serves the routes (and WebSocket upgrades) on node:http, or on Bun's or Deno's own server there. */
  listen(port = 3000, hostname = "127.0.0.1", app?: Hono): Promise<Listening> {
    return listenOnRuntime({ ...this.nodeLink(), maxBufferedBytes: this.limits.maxBufferedBytes }, port, hostname, app);
  }

  /**
   * Handles WebSocket upgrades on a node:http server. `app` is the Hono app the routes are mounted
   * in, so its middleware runs for upgrades too (default: the routes alone at `base`); or options:
   * `{ app, context }`, `context(req)` doing for an upgrade what another framework's middleware does
   * for its requests (README, "Express, Fastify, Koa").
   */
  attach(server: Server, app?: Hono | AttachOptions): void {
    attach(this.nodeLink(), server, app && "fetch" in app ? { app } : app);
  }

  /**
   * The bus as a Connect/Express middleware (`app.use(bus.nodeHandler())`): requests under `base`
   * are served, the rest passed on with `next()` (answered 404 without one, as a node:http listener).
   */
  nodeHandler(): NodeHandler {
    return this.nodeServe().handler();
  }

  /**
   * Serves a node:http request if it is under `base` (true; false: not the bus's, nothing done),
   * for frameworks with request objects of their own: `context` (Koa's ctx, Fastify's request) is
   * `c.env.context` in the lookups. The framework must leave the body unread and the response alone.
   */
  serveNode(req: IncomingMessage, res: ServerResponse, context?: unknown): boolean {
    return this.nodeServe().serve(req, res, context);
  }

  private nodeServe(): NodeServe {
    return (this.served ??= new NodeServe(this.nodeLink()));
  }

  /** Who a request is, as the lookups say. */
  async identify(c: Context, clientId: string): Promise<Identity> {
    const o = this.options;
    const [userId, groupIds, siteId] = await Promise.all([o.userIdLookup?.(c), o.groupIdsLookup?.(c), o.siteIdLookup?.(c)]);
    return { clientId, userId, groupIds, siteId };
  }

  async authorizeAll(c: Context, channels: Iterable<string>): Promise<void> {
    const authorize = this.options.authorize;
    if (!authorize) return;
    for (const ch of channels) {
      if (!(await authorize(c, ch))) throw new ProtocolError(`not allowed to subscribe to ${quote(ch)}`, 403);
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
      /** New connections and polls refused by load shedding (503, close 1013), since start. */
      refused: this.refused,
      /** "draining" from drain() on (the health check fails), "closed" after close(). */
      state: this.closing ? "closed" : this.leaving ? "draining" : "serving",
    };
  }

  /**
   * The prom-client registry holding the bus's metrics (the app's own when `metrics.registry` was
   * given). Loads prom-client on first call; rejects when metrics are off.
   */
  metricsRegistry(): Promise<Registry> {
    const o = this.options.metrics;
    if (!o) return Promise.reject(new Error("cometbus: metrics are off: new MessageBus({ metrics: true })"));
    return (this.registry ??= import("./prometheus.js").then(({ registerMetrics }) =>
      registerMetrics(
        {
          tally: this.hub.tally,
          connections: () => this.hub.countByKind(),
          received: () => this.published,
          shed: () => this.refused,
          bytesWritten: () => this.meter?.total ?? 0,
          lagMs: () => this.lag?.lagMs ?? 0,
        },
        typeof o === "object" ? o.registry : undefined,
      ),
    ));
  }

  /** What `GET {base}/metrics` serves, when it is on. */
  private metricsRoute(): RouteBus["metrics"] {
    const o = this.options.metrics;
    if (!o || (typeof o === "object" && o.route === false)) return undefined;
    return {
      token: (typeof o === "object" ? o.token : undefined) ?? this.options.publishToken,
      scrape: async () => {
        const registry = await this.metricsRegistry();
        return { type: registry.contentType, body: await registry.metrics() };
      },
    };
  }

  logError(e: unknown): void {
    (this.options.onError ?? ((x: unknown) => console.error("cometbus:", x)))(e);
  }

  /**
   * Tells every connection to move at once (each told to spread its reconnection over `spreadMs`),
   * waits for the publishes under way (an acknowledged one is stored), and disconnects the store.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.hub.close(this.spreadMs());
    this.lag?.stop();
    this.runner.close();
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, CLOSE_WAIT_MS))]);
    await this.started.catch(() => {});
    await this.backend.close();
  }

  /** What the routes may use of the bus. */
  private routeBus(): RouteBus {
    const o = this.options;
    return {
      transports: this.transports,
      publishToken: o.publishToken,
      allowedOrigins: o.allowedOrigins,
      authorizes: !!o.authorize,
      readsRequests: () => !!(o.userIdLookup || o.groupIdsLookup || o.siteIdLookup || o.authorize),
      identify: (c, clientId) => this.identify(c, clientId),
      authorizeAll: (c, channels) => this.authorizeAll(c, channels),
      publish: (channel, data, opts) => this.publish(channel, data, opts as PublishOptions),
      stats: () => this.stats(),
      metrics: this.metricsRoute(),
      clientBundle,
      takesRequests: () => this.handlers.size > 0 || !!this.options.clientPublish,
      draining: () => this.draining,
      leaving: () => this.leaving !== undefined,
      shed: (held) => this.shed(held),
    };
  }

  /** What the node:http adapter may use of the bus. */
  private nodeLink(): NodeLink {
    return {
      base: this.options.base,
      maxFrameBytes: this.limits.maxFrameBytes,
      fast: this.fast,
      deflate: deflateSettings(this.options.perMessageDeflate),
      meter: this.meter,
      mounted: () => mountRoutes(this.options.base, this.routes()),
      routeBus: () => this.routeBus(),
      report: (e) => this.logError(e),
      close: () => this.close(),
      drain: (options) => this.drain(options),
    };
  }
}
