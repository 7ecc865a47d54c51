import { createHash } from "node:crypto";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { type AppendRequest, type Backend, type BackendEvents, type Snapshot, type StoredMessage, BackendUnavailableError } from "../core/backend.js";
import { GlobalFeed, readAllPages } from "./global-feed.js";
import { publishedMessage } from "./stored-message.js";
import { RedisLedger } from "./redis-ledger.js";
import { reading, throttledReporter } from "./store-errors.js";
import { EpochAgreement } from "./redis-epochs.js";
import { RedisShard } from "./redis-shard.js";
import { checkShards, localAfter, newer, nextEpoch, parseClusterUrl, shardOf, shardTags } from "./redis-shards.js";

export interface RedisBackendOptions {
  /**
   * `redis://[:password@]host:port/db`, or `redis+cluster://host:port,host:port` for a Redis Cluster
   * (`rediss…` for TLS); `?prefix=` sets `prefix`, `?shards=` sets `shards`.
   */
  url?: string;
  /** Prefix of every key and of the notification channel. Default `cometbus:`. */
  prefix?: string;
  /** Extra ioredis options (TLS, sentinels, …); on a cluster, those of each node's connection. */
  redis?: RedisOptions;
  /** Extra options of the ioredis Cluster (cluster mode only). */
  cluster?: ClusterOptions;
  /**
   * Cluster mode: how many shards the channels hash to, each one hash tag (so one node) with its
   * own sequence, backlog and notifications. Fixed for a deployment: every process must use the
   * same number, and changing it moves channels to other shards (README, "Redis Cluster"). Default 16.
   */
  shards?: number;
  /** Messages read per round trip when catching up. Default 1000. */
  pageSize?: number;
  /** How often a process checks for messages whose notification it may have missed, in ms. Default 2000. */
  safetyPollMs?: number;
  /** Connection trouble and failed reads. Default: one `console.error` line per outage. */
  onError?: (error: unknown) => void;
}

type Client = Redis | Cluster;

/**
 * Redis as a shared store (README, "Backends and scale-out"): one Lua script per publish assigns both ids, appends to the
 * channel's and the global backlog, trims, and PUBLISHes `epoch:globalId`; every process reads the
 * global backlog after the last id it delivered (GlobalFeed), so a lost notification costs latency,
 * never a message. On a Redis Cluster the same holds per shard (RedisShard): channels hash to a
 * fixed number of shards, every process reads every shard, and the shards share one epoch
 * (EpochAgreement).
 */
export class RedisBackend implements Backend {
  readonly kind: "redis" | "redis-cluster";
  readonly prefix: string;
  readonly shards: RedisShard[];
  private readonly commands: Client;
  private readonly listener: Client;
  private agreement?: EpochAgreement;
  private readonly pageSize: number;
  private readonly report: (e: unknown) => void;
  private closed = false;
  private lastError?: Error;
  readonly ledger: RedisLedger;

  constructor(private readonly options: RedisBackendOptions = {}) {
    const raw = options.url ?? "redis://127.0.0.1:6379";
    const clustered = /^rediss?\+cluster:/.test(raw);
    const cluster = clustered ? parseClusterUrl(raw) : undefined;
    const single = clustered ? undefined : parseRedisUrl(raw);
    this.kind = clustered ? "redis-cluster" : "redis";
    this.prefix = options.prefix ?? cluster?.prefix ?? single?.prefix ?? "cometbus:";
    this.pageSize = options.pageSize ?? 1000;
    const user = options.onError;
    this.report = user ? (e) => e !== null && user(e) : throttledReporter("Redis");
    const run = <T>(script: string, keys: string[], args: string[]) => this.eval<T>(script, keys, args);
    this.ledger = new RedisLedger(run, this.prefix);
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
    if (cluster) {
      // A hash tag in the prefix would pull every shard into one slot.
      if (/[{}]/.test(this.prefix)) throw new Error(`cometbus: a Redis Cluster key prefix may not contain { or }: ${this.prefix}`);
      const count = checkShards(options.shards ?? cluster.shards ?? 16);
      const terms = { count, pageSize: this.pageSize, notifyCommand: "SPUBLISH" as const };
      this.shards = shardTags(count).map((tag, i) => new RedisShard(i, `${this.prefix}{${tag}}`, run, terms));
      const nodeOptions: RedisOptions = {
        ...base,
        username: cluster.username,
        password: cluster.password,
        ...(cluster.tls ? { tls: {} } : {}),
        ...options.redis,
      };
      const clusterOptions: ClusterOptions = {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRedirections: 16,
        // A command whose connection closed may have run (a script whose answer was lost): never sent
        // again, the caller gets an error (a publish: 503), as on one Redis. Answers that say it did
        // not run (MOVED, ASK, TRYAGAIN, CLUSTERDOWN while a replica takes over) are retried.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 200,
        clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
        redisOptions: nodeOptions,
        ...options.cluster,
      };
      this.commands = new Cluster(cluster.nodes, { ...clusterOptions, redisOptions: { ...nodeOptions, commandTimeout: 5000 } });
      this.listener = new Cluster(cluster.nodes, { ...clusterOptions, shardedSubscribers: true });
    } else {
      const url = single!.url;
      this.shards = [new RedisShard(0, this.prefix, run, { count: 1, pageSize: this.pageSize, notifyCommand: "PUBLISH" })];
      this.commands = new Redis(url, { commandTimeout: 5000, ...base });
      this.listener = new Redis(url, { ...base, autoResubscribe: true });
    }
    for (const r of [this.commands, this.listener]) {
      r.on("error", (e: Error) => {
        this.lastError = e;
        this.report(e);
      });
      // Back only when both are: a read on the one still reconnecting would fail and say "down" again.
      r.on("ready", () => {
        if (this.commands.status !== "ready" || this.listener.status !== "ready") return;
        this.report(null);
        // After a reconnect, whatever was published meanwhile is read from the backlog.
        for (const s of this.shards) s.feed?.poke();
      });
    }
  }

  get epoch(): string {
    return this.agreement?.epoch ?? "";
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
    const agreement = new EpochAgreement(this.shards, events, (e) => this.report(e), (s) => this.shards[s.index].feed?.poke());
    const byChannel = new Map(this.shards.map((s) => [s.notifyChannel, s]));
    const feeds = this.shards.map((s) => {
      let seen = "";
      const feed = new GlobalFeed(
        async (after) => {
          const page = await s.readGlobal(after, this.freshEpoch());
          // Reads succeed and notifications flow: whatever went wrong is over (the next outage is reported).
          if (this.listener.status === "ready") this.report(null);
          return page;
        },
        {
          message: (m) => {
            m.global_id = s.wire(m.global_id);
            agreement.message(s, m);
          },
          epoch: (e) => {
            if (e === seen) return;
            seen = e;
            agreement.shardEpoch(s);
          },
        },
        (e) => this.report(e),
      );
      return { s, feed, setSeen: (e: string) => (seen = e) };
    });
    await Promise.all([this.commands.connect(), this.listener.connect()]);
    const onNotify = (channel: string, payload: string) => byChannel.get(channel)?.feed?.notify(payload);
    if (this.listener instanceof Cluster) {
      this.listener.on("smessage", onNotify);
      // One shard channel per call: they are in different slots.
      for (const s of this.shards) await this.listener.ssubscribe(s.notifyChannel);
    } else {
      this.listener.on("message", onNotify);
      await this.listener.subscribe(this.shards[0].notifyChannel);
    }
    // Subscribed first, then reading where the store stands: whatever is published in between is
    // read by the poke below, nothing earlier is delivered. Shards in different epochs (a first
    // start, or one flushed while no process ran) are brought to one before anything is delivered.
    let heads: [string, number, number[]][] = [];
    for (let attempt = 0; ; attempt++) {
      const fresh = this.freshEpoch();
      heads = await Promise.all(this.shards.map((s) => s.snapshot([], fresh)));
      const greatest = heads.reduce((g, [e]) => (newer(e, g) ? e : g), "");
      if (heads.every(([e]) => e === greatest)) break;
      if (attempt === 5) throw new Error("the shards' epochs do not settle");
      await Promise.all(this.shards.map((s) => s.adopt(greatest)));
    }
    for (const [i, { s, feed, setSeen }] of feeds.entries()) {
      feed.begin(heads[i][0], heads[i][1], this.options.safetyPollMs ?? 2000);
      setSeen(heads[i][0]);
      s.feed = feed;
    }
    agreement.begin(heads[0][0]);
    this.agreement = agreement;
    for (const s of this.shards) s.feed!.poke();
  }

  /** An epoch to start where a shard has none (flushed): after every epoch seen so far. */
  private freshEpoch(): string {
    return nextEpoch(this.shards.reduce((g, s) => (newer(s.epoch, g) ? s.epoch : g), this.epoch));
  }

  private shardOf(channel: string): RedisShard {
    return this.shards[shardOf(channel, this.shards.length)];
  }

  async append(req: AppendRequest): Promise<StoredMessage> {
    const shard = this.shardOf(req.channel);
    let reply: [string, number, number];
    try {
      reply = await shard.append(req, this.freshEpoch());
    } catch (e) {
      throw new BackendUnavailableError("Redis", e);
    }
    const [epoch, gid, mid] = reply;
    // This publish found the shard empty (flushed): the process learns the new epoch at once.
    if (shard.feed && epoch !== shard.feed.epoch) shard.feed.poke();
    return publishedMessage(req, shard.wire(gid), mid);
  }

  backlog(channel: string, afterId: number, limit?: number): Promise<StoredMessage[]> {
    return reading("Redis", () => this.shardOf(channel).backlog(channel, afterId, limit ?? -1));
  }

  globalBacklog(afterGlobalId: number): Promise<StoredMessage[]> {
    return reading("Redis", async () => {
      const count = this.shards.length;
      const pages = await Promise.all(
        this.shards.map(async (s) => {
          const local = await readAllPages((after) => s.readGlobal(after, this.freshEpoch()), localAfter(afterGlobalId, s.index, count), this.pageSize);
          for (const m of local) m.global_id = s.wire(m.global_id);
          return local;
        }),
      );
      const all = pages.flat();
      return count === 1 ? all : all.sort((a, b) => a.global_id - b.global_id);
    });
  }

  snapshot(channels: Iterable<string>): Promise<Snapshot> {
    return reading("Redis", () => this.readSnapshot(channels));
  }

  /**
   * Reads only the shards of `channels` (all of them when none is named): `globalId` is the
   * greatest wire global id among those shards.
   */
  private async readSnapshot(channels: Iterable<string>): Promise<Snapshot> {
    const list = [...channels];
    const byShard = new Map<RedisShard, string[]>();
    if (!list.length) for (const s of this.shards) byShard.set(s, []);
    for (const c of list) {
      const s = this.shardOf(c);
      const l = byShard.get(s);
      if (l) l.push(c);
      else byShard.set(s, [c]);
    }
    const fresh = this.freshEpoch();
    const agreed = this.epoch;
    const lastIds = new Map<string, number>();
    let globalId = 0;
    let moving = false;
    await Promise.all(
      [...byShard].map(async ([s, names]) => {
        const [epoch, last, ids] = await s.snapshot(names, fresh);
        if (s.feed && epoch !== s.feed.epoch) s.feed.poke();
        if (epoch !== agreed) moving = true;
        globalId = Math.max(globalId, last ? s.wire(last) : 0);
        names.forEach((c, i) => lastIds.set(c, ids[i]));
      }),
    );
    // A shard already in another epoch than the one the bus is in (the shards are agreeing on a new
    // one: a failover, a flush): its ids belong to that epoch, and a catch-up read under the agreed
    // one would hand a client now what the reset then delivers again. The read fails as the store
    // does (`reading`: 503, Retry-After): the client comes back once they agree, and the reset tells it
    // where to start.
    if (moving || this.epoch !== agreed) throw new Error("the shards are moving to a new epoch");
    return { epoch: agreed, globalId, lastIds: new Map(list.map((c) => [c, lastIds.get(c) ?? 0])) };
  }

  async reset(): Promise<void> {
    const epoch = this.freshEpoch();
    const agreement = this.agreement;
    const run = async () => {
      await Promise.all(this.shards.map((s) => s.reset(epoch)));
      for (const s of this.shards) s.feed?.switchEpoch(epoch);
    };
    if (agreement) await agreement.quietly(run);
    else await run();
  }

  /**
   * Deletes every key under the prefix (tests, uninstall). This backend stops reading first, or its
   * next read would create a fresh epoch key; close other processes on the prefix before.
   */
  async destroy(): Promise<void> {
    for (const s of this.shards) s.feed?.close();
    if (this.commands.status === "wait") await this.commands.connect();
    const nodes = this.commands instanceof Cluster ? this.commands.nodes("master") : [this.commands];
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", escapeGlob(this.prefix) + "*", "COUNT", 1000);
        // One DEL per key: on a cluster, keys of one node may be in different slots.
        if (keys.length) await Promise.all(keys.map((k) => node.del(k)));
        cursor = next;
      } while (cursor !== "0");
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.agreement?.close();
    for (const s of this.shards) s.feed?.close();
    await Promise.all([quit(this.commands), quit(this.listener)]);
  }

  /** EVALSHA, falling back to EVAL when Redis lost its script cache (a restart, a promoted replica). */
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

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

async function quit(r: Client): Promise<void> {
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
