import { createHash } from "node:crypto";
import type { AppendRequest, StoredMessage } from "../core/backend.js";
import type { FeedPage, GlobalFeed } from "./global-feed.js";
import { ADOPT, BACKLOG, GLOBAL, PUBLISH, RESET, SNAPSHOT } from "./redis-scripts.js";
import { wireGlobalId } from "./redis-shards.js";
import { encodeMeta, storedMessage } from "./stored-message.js";

export type RunScript = <T>(script: string, keys: string[], args: string[]) => Promise<T>;

/** What the shard's reader needs to read it. */
export interface ShardTerms {
  /** Every shard of the deployment (for wire global ids). */
  count: number;
  pageSize: number;
  /** PUBLISH on one Redis, SPUBLISH on a cluster. */
  notifyCommand: "PUBLISH" | "SPUBLISH";
}

/**
 * One shard of the Redis store: its keys (all under one hash tag on a cluster; the plain prefix on
 * one Redis, where the keys are those of earlier versions), its scripts, and the newest entry this
 * process knows it holds (what a failover that lost writes is detected by, GLOBAL in redis-scripts.ts).
 */
export class RedisShard {
  readonly keys: [epoch: string, gid: string, ids: string, global: string];
  readonly notifyChannel: string;
  feed?: GlobalFeed;
  /** The newest entry known to be in the shard: read by this process, or its publish acknowledged here. */
  private known = { epoch: "", gid: 0, entry: "", sha: "" };

  constructor(
    readonly index: number,
    /** The prefix of every key of this shard, hash tag included. */
    readonly prefix: string,
    private readonly run: RunScript,
    private readonly terms: ShardTerms,
  ) {
    this.keys = [prefix + "epoch", prefix + "gid", prefix + "ids", prefix + "global"];
    this.notifyChannel = prefix + "notify";
  }

  get epoch(): string {
    return this.feed?.epoch ?? "";
  }

  /** Returns [epoch, local global id, message id]. */
  async append(req: AppendRequest, fresh: string): Promise<[string, number, number]> {
    const meta = encodeMeta(req);
    const [k1, k2, k3, k4] = this.keys;
    const reply = await this.run<[string, number, number]>(
      PUBLISH,
      [k1, k2, k3, k4, this.prefix + "log:" + req.channel, this.prefix + "exp:" + req.channel],
      [
        req.channel,
        meta,
        req.dataJson,
        String(req.maxBacklogSize),
        String(req.maxBacklogAge),
        String(req.maxGlobalBacklogSize),
        fresh,
        this.notifyChannel,
        this.terms.notifyCommand,
      ],
    );
    this.remember(reply[0], reply[1], `${reply[1]}|${reply[2]}|${meta}\n${req.dataJson}`);
    return reply;
  }

  async backlog(channel: string, afterId: number, limit: number): Promise<StoredMessage[]> {
    const entries = await this.run<string[]>(BACKLOG, [this.prefix + "log:" + channel, this.prefix + "exp:" + channel], [String(afterId), String(limit)]);
    return entries.map((e) => this.decode(e));
  }

  /** A page of the shard's global backlog after its own sequence number `after`, global ids as on the wire. */
  async readGlobal(after: number, fresh: string): Promise<FeedPage> {
    const k = this.known;
    if (k.gid && !k.sha) k.sha = createHash("sha1").update(k.entry).digest("hex");
    const [epoch, lastGlobalId, entries] = await this.run<[string, number, string[]]>(GLOBAL, this.keys, [
      String(after),
      String(this.terms.pageSize),
      fresh,
      String(k.gid),
      k.sha,
      k.epoch,
      this.prefix,
      this.notifyChannel,
      this.terms.notifyCommand,
      fresh,
    ]);
    const last = entries[entries.length - 1];
    if (last) this.remember(epoch, Number(last.slice(0, last.indexOf("|"))), last);
    else if (epoch !== k.epoch) this.known = { epoch, gid: 0, entry: "", sha: "" };
    return { epoch, lastGlobalId, messages: entries.map((e) => this.decode(e, false)) };
  }

  /** Returns [epoch, local last global id, last ids of `channels`]. */
  snapshot(channels: string[], fresh: string): Promise<[string, number, number[]]> {
    return this.run(SNAPSHOT, this.keys.slice(0, 3), [fresh, ...channels]);
  }

  reset(epoch: string): Promise<string> {
    return this.run(RESET, this.keys, [epoch, this.prefix, this.notifyChannel, this.terms.notifyCommand]);
  }

  async adopt(epoch: string): Promise<void> {
    await this.run(ADOPT, this.keys, [epoch, this.prefix, this.notifyChannel, this.terms.notifyCommand]);
  }

  /** The shard's own sequence number as the wire's global id. */
  wire(local: number): number {
    return wireGlobalId(local, this.index, this.terms.count);
  }

  private remember(epoch: string, gid: number, entry: string): void {
    const k = this.known;
    if (epoch === k.epoch && gid <= k.gid) return;
    this.known = { epoch, gid, entry, sha: "" };
  }

  /**
   * `gid|mid|meta\ndataJson`. The reader (GlobalFeed) counts in the shard's own sequence, so its
   * pages keep those ids (`wire`: false) and the backend translates what it delivers.
   */
  decode(entry: string, wire = true): StoredMessage {
    const a = entry.indexOf("|");
    const b = entry.indexOf("|", a + 1);
    const nl = entry.indexOf("\n", b + 1);
    const gid = Number(entry.slice(0, a));
    return storedMessage(wire ? this.wire(gid) : gid, Number(entry.slice(a + 1, b)), entry.slice(b + 1, nl), entry.slice(nl + 1));
  }
}
