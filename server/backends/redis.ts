import { createHash } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { type AppendRequest, type Backend, type BackendEvents, randomEpoch, type Snapshot, type StoredMessage, BackendUnavailableError } from "../core/backend.js";
import { BACKLOG, GLOBAL, PUBLISH, RESET, SNAPSHOT } from "./redis-scripts.js";
import { type FeedPage, GlobalFeed, readAllPages } from "./global-feed.js";
import { encodeMeta, publishedMessage, storedMessage } from "./stored-message.js";
import { RedisLedger } from "./redis-ledger.js";
import { reading, throttledReporter } from "./store-errors.js";

export interface RedisBackendOptions {
  /** `redis://[:password@]host:port/db`; `?prefix=` in the URL sets `prefix`. */
  url?: string;
  /** Prefix of every key and of the notification channel. Default `cometbus:`. */
  prefix?: string;
  /** Extra ioredis options (TLS, sentinels, …). */
  redis?: RedisOptions;
  /** Messages read per round trip when catching up. Default 1000. */
  pageSize?: number;
  /** How often a process checks for messages whose notification it may have missed, in ms. Default 2000. */
  safetyPollMs?: number;
  /** Connection trouble and failed reads. Default: one `console.error` line per outage. */
  onError?: (error: unknown) => void;
}

type Reply = [string, number, string[]];

/**
 * Redis as a shared store (README, "Backends and scale-out"): one Lua script per publish assigns both ids, appends to the
 * channel's and the global backlog, trims, and PUBLISHes `epoch:globalId`; every process reads the
 * global backlog after the last id it delivered (GlobalFeed), so a lost notification costs latency,
 * never a message.
 */
export class RedisBackend implements Backend {
  readonly kind = "redis";
  readonly prefix: string;
  private readonly commands: Redis;
  private readonly listener: Redis;
  private feed?: GlobalFeed;
  private readonly keys: { epoch: string; gid: string; ids: string; global: string };
  private readonly notifyChannel: string;
  private readonly pageSize: number;
  private readonly report: (e: unknown) => void;
  private closed = false;
  private lastError?: Error;
  readonly ledger: RedisLedger;

  constructor(private readonly options: RedisBackendOptions = {}) {
    const { url, prefix } = parseRedisUrl(options.url ?? "redis://127.0.0.1:6379");
    this.prefix = options.prefix ?? prefix ?? "cometbus:";
    this.pageSize = options.pageSize ?? 1000;
    const user = options.onError;
    this.report = user ? (e) => e !== null && user(e) : throttledReporter("Redis");
    const p = this.prefix;
    this.keys = { epoch: p + "epoch", gid: p + "gid", ids: p + "ids", global: p + "global" };
    this.notifyChannel = p + "notify";
    this.ledger = new RedisLedger((script, keys, args) => this.eval(script, keys, args), p);
    const base: RedisOptions = {
      lazyConnect: true,
      // While Redis is down a publish must fail at once, not wait in a queue, and a command whose
      // answer was lost must not be sent twice (it may have run): the caller gets an error instead.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(100 * times, 1000),
      connectionName: "cometbus",
      // A Redis that stops answering without closing (a network partition) fails publishes too.
      keepAlive: 10_000,
      ...options.redis,
    };
    this.commands = new Redis(url, { commandTimeout: 5000, ...base });
    this.listener = new Redis(url, { ...base, autoResubscribe: true });
    for (const r of [this.commands, this.listener]) {
      r.on("error", (e) => {
        this.lastError = e;
        this.report(e);
      });
      // Back only when both are: a read on the one still reconnecting would fail and say "down" again.
      r.on("ready", () => {
        if (this.commands.status !== "ready" || this.listener.status !== "ready") return;
        this.report(null);
        // After a reconnect, whatever was published meanwhile is read from the backlog.
        this.feed?.poke();
      });
    }
  }

  get epoch(): string {
    return this.feed?.epoch ?? "";
  }

  async start(events: BackendEvents): Promise<void> {
    try {
      await this.connect(events);
    } catch (e) {
      // Nothing left running (reconnect loops, timers) by a bus that failed to start.
      await this.close();
      const why = this.lastError ?? e;
      throw new Error(`cometbus: cannot connect to Redis: ${why instanceof Error ? why.message : String(why)}`);
    }
  }

  private async connect(events: BackendEvents): Promise<void> {
    const feed = new GlobalFeed((after) => this.readGlobal(after), events, (e) => this.report(e));
    await Promise.all([this.commands.connect(), this.listener.connect()]);
    this.listener.on("message", (channel: string, payload: string) => {
      if (channel === this.notifyChannel) feed.notify(payload);
    });
    await this.listener.subscribe(this.notifyChannel);
    // Subscribed first, then reading where the store stands: whatever is published in between is
    // read by the poke below, nothing earlier is delivered.
    const [epoch, last] = await this.eval<Reply>(SNAPSHOT, [this.keys.epoch, this.keys.gid, this.keys.ids], [randomEpoch()]);
    feed.begin(epoch, last, this.options.safetyPollMs ?? 2000);
    this.feed = feed;
    feed.poke();
  }

  async append(req: AppendRequest): Promise<StoredMessage> {
    const k = this.keys;
    let reply: [string, number, number];
    try {
      reply = await this.eval(
        PUBLISH,
        [k.epoch, k.gid, k.ids, k.global, this.logKey(req.channel), this.expKey(req.channel)],
        [
          req.channel,
          encodeMeta(req),
          req.dataJson,
          String(req.maxBacklogSize),
          String(req.maxBacklogAge),
          String(req.maxGlobalBacklogSize),
          randomEpoch(),
          this.notifyChannel,
        ],
      );
    } catch (e) {
      throw new BackendUnavailableError("Redis", e);
    }
    const [epoch, gid, mid] = reply;
    // This publish found the store empty (flushed): the process learns the new epoch at once.
    if (this.feed && epoch !== this.feed.epoch) this.feed.poke();
    return publishedMessage(req, gid, mid);
  }

  backlog(channel: string, afterId: number, limit?: number): Promise<StoredMessage[]> {
    return reading("Redis", () => this.readBacklog(channel, afterId, limit));
  }

  private async readBacklog(channel: string, afterId: number, limit = -1): Promise<StoredMessage[]> {
    const entries = await this.eval<string[]>(BACKLOG, [this.logKey(channel), this.expKey(channel)], [String(afterId), String(limit)]);
    return entries.map(decodeEntry);
  }

  globalBacklog(afterGlobalId: number): Promise<StoredMessage[]> {
    return reading("Redis", () => readAllPages((after) => this.readGlobal(after), afterGlobalId, this.pageSize));
  }

  snapshot(channels: Iterable<string>): Promise<Snapshot> {
    return reading("Redis", () => this.readSnapshot(channels));
  }

  private async readSnapshot(channels: Iterable<string>): Promise<Snapshot> {
    const list = [...channels];
    const [epoch, globalId, ids] = await this.eval<[string, number, number[]]>(
      SNAPSHOT,
      [this.keys.epoch, this.keys.gid, this.keys.ids],
      [randomEpoch(), ...list],
    );
    if (this.feed && epoch !== this.feed.epoch) this.feed.poke();
    return { epoch, globalId, lastIds: new Map(list.map((c, i) => [c, ids[i]])) };
  }

  async reset(): Promise<void> {
    const k = this.keys;
    const epoch = await this.eval<string>(RESET, [k.epoch, k.gid, k.ids, k.global], [randomEpoch(), this.prefix, this.notifyChannel]);
    this.feed?.switchEpoch(epoch);
  }

  /**
   * Deletes every key under the prefix (tests, uninstall). This backend stops reading first, or its
   * next read would create a fresh epoch key; close other processes on the prefix before.
   */
  async destroy(): Promise<void> {
    this.feed?.close();
    if (this.commands.status === "wait") await this.commands.connect();
    let cursor = "0";
    do {
      const [next, keys] = await this.commands.scan(cursor, "MATCH", escapeGlob(this.prefix) + "*", "COUNT", 1000);
      if (keys.length) await this.commands.del(...keys);
      cursor = next;
    } while (cursor !== "0");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed?.close();
    await Promise.all([quit(this.commands), quit(this.listener)]);
  }

  private async readGlobal(after: number): Promise<FeedPage> {
    const [epoch, lastGlobalId, entries] = await this.eval<Reply>(
      GLOBAL,
      [this.keys.epoch, this.keys.gid, this.keys.global],
      [String(after), String(this.pageSize), randomEpoch()],
    );
    // Reads succeed and notifications flow: whatever went wrong is over (the next outage is reported).
    if (this.listener.status === "ready") this.report(null);
    return { epoch, lastGlobalId, messages: entries.map(decodeEntry) };
  }

  private logKey(channel: string): string {
    return this.prefix + "log:" + channel;
  }

  private expKey(channel: string): string {
    return this.prefix + "exp:" + channel;
  }

  /** EVALSHA, falling back to EVAL when Redis lost its script cache (a restart). */
  private async eval<T>(script: string, keys: string[], args: string[]): Promise<T> {
    const sha = shaOf(script);
    try {
      return (await this.commands.evalsha(sha, keys.length, ...keys, ...args)) as T;
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith("NOSCRIPT")) throw e;
      return (await this.commands.eval(script, keys.length, ...keys, ...args)) as T;
    }
  }
}

const shas = new Map<string, string>();
function shaOf(script: string): string {
  let sha = shas.get(script);
  if (!sha) shas.set(script, (sha = createHash("sha1").update(script).digest("hex")));
  return sha;
}

/** `gid|mid|meta\ndataJson` */
function decodeEntry(entry: string): StoredMessage {
  const a = entry.indexOf("|");
  const b = entry.indexOf("|", a + 1);
  const nl = entry.indexOf("\n", b + 1);
  return storedMessage(Number(entry.slice(0, a)), Number(entry.slice(a + 1, b)), entry.slice(b + 1, nl), entry.slice(nl + 1));
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

async function quit(r: Redis): Promise<void> {
  try {
    if (r.status === "ready") await r.quit();
    else r.disconnect();
  } catch {
    r.disconnect();
  }
}

/** Takes cometbus's own `prefix` out of the URL's query; ioredis reads the rest. */
export function parseRedisUrl(raw: string): { url: string; prefix?: string } {
  const u = new URL(raw);
  const prefix = u.searchParams.get("prefix") ?? undefined;
  u.searchParams.delete("prefix");
  return { url: u.toString(), prefix };
}

export function createBackend(url: string): Backend {
  return new RedisBackend({ url });
}
