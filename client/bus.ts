import type { Reply } from "../src/request.js";
import { LongPollMode } from "./long-poll-mode.js";
import { Outbox } from "./requests.js";
import { Negotiator } from "./negotiate.js";
import { Subscriptions } from "./subscriptions.js";
import { busKey } from "./bus-key.js";
import { shareKey } from "./share-key.js";
import { TabShare } from "./tabs/share.js";
import { canShareTabs } from "./tabs/tab-protocol.js";
import { LongPollTransport } from "./transports/long-poll.js";
import { PollTransport } from "./transports/poll.js";
import { SseTransport } from "./transports/sse.js";
import { WebSocketTransport } from "./transports/websocket.js";
import type { Callback, ClientOptions, Host, Message, Stats, Transport, TransportEvents, TransportName } from "./types.js";

function uniqueId(): string {
  let s = "";
  for (let i = 0; i < 32; i++) s += ((Math.random() * 16) | 0).toString(16);
  return s;
}

function createTransport(host: Host, name: TransportName, events: TransportEvents): Transport {
  switch (name) {
    case "websocket":
      return new WebSocketTransport(host, events);
    case "sse":
      return new SseTransport(host, events);
    case "long-poll":
      return new LongPollTransport(host, events);
    default:
      return new PollTransport(host, events);
  }
}

/**
 * message-bus-client's API on cometbus's transports: subscribe / unsubscribe / start / stop / pause /
 * resume / status and its settings as plain properties, plus `transports`, `onTransport`, `onReset`.
 */
export class MessageBus implements Host, ClientOptions {
  baseUrl = "/";
  clientId = uniqueId();
  headers: Record<string, string> = {};
  callbackInterval = 15000;
  backgroundCallbackInterval = 60000;
  minPollInterval = 100;
  maxPollInterval = 180000;
  alwaysLongPoll = false;
  shouldLongPollCallback?: () => boolean = undefined;
  minHiddenPollInterval = 1500;
  enableLongPolling = true;
  enableChunkedEncoding = true;
  firstChunkTimeout = 3000;
  retryChunkedAfterRequests = 30;
  transports: TransportName[] = ["websocket", "sse", "long-poll", "poll"];
  heartbeatInterval = 25000;
  retryTransportInterval = 10000;
  path = "message-bus";
  requestTimeout = 30000;
  maxRequestsInFlight = 16;
  shareTabs = canShareTabs();

  readonly stats: Stats = { requests: 0, frames: 0, bytes: 0, transportSwitches: 0 };
  chunkedBackoff = 0;
  fallback: string | null = null;
  spreadMs = 0;

  private readonly subs = new Subscriptions();
  private readonly negotiator: Negotiator;
  /** Set while this tab shares the bus with the other tabs of its origin (shareTabs). */
  private share: TabShare | null = null;
  private started = false;
  private stopped = false;
  private paused = false;
  private later: Message[] = [];
  private current: TransportName | null = null;
  private transportListeners: ((name: TransportName) => void)[] = [];
  private resetListeners: ((channel: string) => void)[] = [];
  private refreshQueued = false;
  private readonly mode = new LongPollMode(this);
  private onVisibility = () => (this.share ? this.share.changed() : this.negotiator.checkMode());
  private readonly outbox = new Outbox({
    requestUrl: () => this.url("request"),
    headers: () => this.headers,
    sendOnSocket: (frame) => {
      // A follower has no socket of its own: its requests go over HTTP, under its own client id.
      const t = this.share ? this.share.negotiator?.active : this.negotiator.active;
      return t instanceof WebSocketTransport && t.sendFrame(frame);
    },
    countRequest: () => void this.stats.requests++,
    requestTimeout: () => this.requestTimeout,
    maxRequestsInFlight: () => this.maxRequestsInFlight,
  });

  constructor(options: Partial<ClientOptions> = {}) {
    Object.assign(this, options);
    this.negotiator = new Negotiator(this, (name, events) => createTransport(this, name, events), (name) => this.switched(name));
  }

  get options(): ClientOptions {
    return this;
  }

  get epoch(): string {
    return this.subs.epoch;
  }

  /** The transport delivering right now, or null when stopped or idle. */
  get transport(): TransportName | null {
    return this.current;
  }

  /** With shareTabs: whether this tab holds the connection for its origin's tabs ("leader") or not; null when not sharing. */
  get tabRole(): "leader" | "follower" | null {
    return this.share ? (this.share.leading ? "leader" : "follower") : null;
  }

  /** message-bus-client's list of `{channel, func}`. */
  get callbacks(): readonly { channel: string; func: Callback }[] {
    return this.subs.callbacks;
  }

  /**
   * lastId: -1 new messages only (default), -N the last N-1 then new ones, k ≥ 0 everything after k.
   * Starts the bus, as message-bus-client does.
   */
  subscribe(channel: string, func: Callback, lastId: number = -1): Callback {
    if (typeof channel !== "string") throw new TypeError("Channel name must be a string!");
    if (lastId === null || lastId === undefined) lastId = -1;
    if (typeof lastId !== "number") throw new TypeError(`lastId has type ${typeof lastId} but a number was expected.`);
    if (!this.started && !this.stopped) this.start();
    this.subs.add(channel, func, lastId);
    this.queueRefresh();
    return func;
  }

  /** A trailing `*` matches every channel with that prefix; `func` removes only that callback. */
  unsubscribe(channel: string, func?: Callback): boolean {
    const removed = this.subs.remove(channel, func);
    if (removed) this.queueRefresh();
    return removed;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    if (typeof document !== "undefined" && document.addEventListener) {
      document.addEventListener("visibilitychange", this.onVisibility);
    }
    this.queueRefresh();
  }

  stop(): void {
    this.stopped = true;
    this.started = false;
    this.negotiator.stop();
    this.share?.stop();
    this.share = null;
    this.switched(null);
    if (typeof document !== "undefined" && document.removeEventListener) {
      document.removeEventListener("visibilitychange", this.onVisibility);
    }
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const due = this.later;
    this.later = [];
    this.dispatch(due);
  }

  status(): "paused" | "started" | "stopped" {
    if (this.paused) return "paused";
    return this.started ? "started" : "stopped";
  }

  onTransport(fn: (name: TransportName) => void): () => void {
    this.transportListeners.push(fn);
    return () => (this.transportListeners = this.transportListeners.filter((f) => f !== fn));
  }

  /** `fn(channel)`: what was asked for on the channel is gone (server reset, trimmed); it starts over at 0. */
  onReset(fn: (channel: string) => void): () => void {
    this.resetListeners.push(fn);
    return () => (this.resetListeners = this.resetListeners.filter((f) => f !== fn));
  }

  /**
   * Asks the server's handler `method` (`bus.handle` there) and resolves with its reply; rejects with
   * a `RequestError` carrying the server's `status`, or `code: "timeout"` after `timeout` ms
   * (default `requestTimeout`). Runs once on the server, in the order made, however the connection
   * changes meanwhile (docs/protocol.md#12-requests). Needs no subscription: without a WebSocket it
   * is a POST.
   */
  request<T = unknown>(method: string, data?: unknown, opts: { timeout?: number } = {}): Promise<T> {
    return this.outbox.request(method, data, opts.timeout) as Promise<T>;
  }

  /** Publishes from the client, if the server's `clientPublish` allows it (403 otherwise). */
  publish(channel: string, data: unknown): Promise<{ globalId: number; messageId: number }> {
    return this.outbox.publish(channel, data);
  }

  /** message-bus-client's console summary, with the transport and counters. */
  diagnostics(): void {
    console.log(`cometbus: ${this.status()} on ${this.current ?? "nothing"}, epoch "${this.epoch}"`);
    console.log("positions", this.subscription());
    console.log("stats", { ...this.stats });
  }

  // ---- Host: what the transports use --------------------------------------------------------------

  url(what: "poll" | "sse" | "ws" | "request"): string {
    const base = this.baseUrl.endsWith("/") ? this.baseUrl : this.baseUrl + "/";
    return `${base}${this.path}/${encodeURIComponent(this.clientId)}/${what}`;
  }

  subscription(): Record<string, number | string> {
    return this.subs.body();
  }

  channels(): string[] {
    return this.subs.channels();
  }

  background(): boolean {
    return !this.mode.live();
  }

  reply(r: Reply): void {
    this.outbox.reply(r);
  }

  socketClosed(): void {
    this.outbox.socketClosed();
  }

  /** What tab sharing tells the leader about this tab. */
  tabState(): { positions: [string, number][]; epoch: string; live: boolean } {
    return { positions: [...this.subs.positions], epoch: this.subs.epoch, live: this.mode.live() };
  }

  receive(batch: Message[], sentEpoch: string): void {
    const due = this.subs.take(batch, sentEpoch, (ch) => {
      for (const fn of this.resetListeners) fn(ch);
    });
    if (!due.length) return;
    if (this.paused) this.later.push(...due);
    else this.dispatch(due);
  }

  // ---- inside ----------------------------------------------------------------------------------------

  private dispatch(messages: Message[]): void {
    for (const m of messages) {
      for (const c of this.subs.callbacks.slice()) {
        if (c.channel !== m.channel) continue;
        try {
          c.func(m.data, m.global_id, m.message_id);
        } catch (e) {
          // One failing callback must not cost the others their messages.
          console.error("cometbus: callback for " + m.channel + " threw", e);
        }
      }
    }
  }

  /** Subscribes in one go when several calls come in the same tick. */
  private queueRefresh(): void {
    if (this.refreshQueued) return;
    this.refreshQueued = true;
    queueMicrotask(() => {
      this.refreshQueued = false;
      if (!this.started) return;
      if (this.shareTabs && !this.share) {
        this.share = new TabShare(this, shareKey(this.url("poll"), this.options.headers), createTransport);
      }
      if (this.share) return this.share.changed();
      if (!this.subs.positions.size) this.negotiator.stop();
      else if (!this.negotiator.running) this.negotiator.start();
      else this.negotiator.refresh();
    });
  }

  /** The transport delivering changed: this tab's own, or (sharing) the leader's. */
  switched(name: TransportName | null): void {
    if (name === this.current) return;
    if (name && this.current) this.stats.transportSwitches++;
    this.current = name;
    // Requests waiting go on what carries now (a WebSocket that just took over, or HTTP).
    this.outbox.flush();
    if (name) for (const fn of this.transportListeners) fn(name);
  }
}
