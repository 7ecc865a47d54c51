import type { Server } from "node:http";
import type { Context, Hono } from "hono";
import { checkChannel, checkPublishChannel, isEpoch } from "../src/channel.js";
import type { Message } from "../src/envelope.js";
import { ProtocolError } from "../src/errors.js";
import type { Limits } from "../src/limits.js";
import { quote, utf8Length } from "../src/text.js";
import { openBackend } from "./backends/load.js";
import type { Backend, Id, StoredMessage } from "./core/backend.js";
import { Hub } from "./core/hub.js";
import { Outgoing } from "./core/outgoing.js";
import { ServerSubscriber } from "./core/server-subscriber.js";
import type { Identity } from "./core/targeting.js";
import type { RouteBus } from "./http/route-deps.js";
import { createRoutes, mountRoutes } from "./http/routes.js";
import { attach, type NodeLink } from "./node/attach.js";
import { type FastPaths, NO_FAST_PATHS, probeFastPaths } from "./node/fast-paths.js";
import { listen, type Listening } from "./node/listen.js";
import { nodeRuntime } from "./node/runtime.js";
import { clientBundle } from "./client-bundle.js";
import { type MessageBusOptions, type PublishOptions, type Published, type ResolvedOptions, resolveOptions } from "./options.js";
import type { HeldPollSlot, TransportContext } from "./transports/context.js";

export type { MessageBusOptions, PublishOptions, Published } from "./options.js";

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
  private readonly started: Promise<void>;
  private readonly transports: TransportContext;
  private readonly fast: FastPaths;
  private app?: Hono;
  private closing = false;

  constructor(options: MessageBusOptions = {}) {
    ({ options: this.options, limits: this.limits } = resolveOptions(options));
    this.hub = new Hub(this.options.heartbeatInterval, (e) => this.logError(e));
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
            this.hub.publish(new Outgoing(m));
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
    this.transports = {
      hub: this.hub,
      backend,
      limits: this.limits,
      longPollTimeout: o.longPollTimeout,
      longPolling: o.longPolling,
      chunkedEncoding: o.chunkedEncoding,
      longPolls: this.longPolls,
      report: (e) => this.logError(e),
    };
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
    return (this.app ??= createRoutes(this.routeBus(), nodeRuntime(this.fast)));
  }

  /** Serves the routes (and WebSocket upgrades) on node:http. */
  listen(port = 3000, hostname = "127.0.0.1", app?: Hono): Promise<Listening> {
    return listen(this.nodeLink(), port, hostname, app);
  }

  /**
   * Handles WebSocket upgrades on a node:http server. `app` is the Hono app the routes are mounted
   * in, so its middleware runs for upgrades too (default: the routes alone at `base`).
   */
  attach(server: Server, app?: Hono): void {
    attach(this.nodeLink(), server, app);
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

  /** What the routes may use of the bus. */
  private routeBus(): RouteBus {
    const o = this.options;
    return {
      transports: this.transports,
      publishToken: o.publishToken,
      allowedOrigins: o.allowedOrigins,
      authorizes: !!o.authorize,
      identify: (c, clientId) => this.identify(c, clientId),
      authorizeAll: (c, channels) => this.authorizeAll(c, channels),
      publish: (channel, data, opts) => this.publish(channel, data, opts as PublishOptions),
      stats: () => this.stats(),
      clientBundle,
    };
  }

  /** What the node:http adapter may use of the bus. */
  private nodeLink(): NodeLink {
    return {
      base: this.options.base,
      maxFrameBytes: this.limits.maxFrameBytes,
      fast: this.fast,
      mounted: () => mountRoutes(this.options.base, this.routes()),
      report: (e) => this.logError(e),
      close: () => this.close(),
    };
  }
}
