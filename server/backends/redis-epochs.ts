import type { BackendEvents, StoredMessage } from "../core/backend.js";
import { newer, nextEpoch } from "./redis-shards.js";

/** What the agreement needs of one shard: the epoch its reader is in, and a way to move it on. */
export interface EpochShard {
  readonly index: number;
  /** The epoch of the shard's reader (GlobalFeed). */
  readonly epoch: string;
  /** Empties the shard into `epoch` unless it holds that one or a later one already (ADOPT). */
  adopt(epoch: string): Promise<void>;
}

/**
 * One epoch for a whole cluster (README, "Redis Cluster"): each shard keeps its own epoch key (its
 * scripts check it atomically), and the bus sees one epoch, the one every shard holds. The wire has
 * one `__epoch` per connection and a new epoch restarts every channel's ids, so a shard that starts
 * over (flushed, or went back in time after a failover) takes the others with it: they adopt the
 * newest epoch any shard holds, and only once all hold it is the bus told, once.
 *
 * Meanwhile a shard already in the new epoch has its messages held (they follow the reset), and a
 * shard still in an older one has its messages dropped (they are wiped by the adoption, and the
 * reset that follows covers them).
 */
export class EpochAgreement {
  epoch = "";
  private readonly held = new Map<number, StoredMessage[]>();
  private readonly seen = new Map<number, string>();
  private readonly adopting = new Map<number, Promise<void>>();
  /** Set when a shard went back below the agreed epoch: the next epoch must be a new one. */
  private target = "";
  private quiet = false;
  private closed = false;

  constructor(
    private readonly shards: EpochShard[],
    private readonly events: BackendEvents,
    private readonly onError: (e: unknown) => void,
    private readonly poke: (shard: EpochShard) => void,
  ) {}

  /** The epochs every shard held at start, all the same. */
  begin(epoch: string): void {
    this.epoch = epoch;
    for (const s of this.shards) this.seen.set(s.index, epoch);
  }

  message(shard: EpochShard, m: StoredMessage): void {
    if (shard.epoch === this.epoch) this.events.message(m);
    else if (newer(shard.epoch, this.epoch)) {
      const list = this.held.get(shard.index);
      if (list) list.push(m);
      else this.held.set(shard.index, [m]);
    }
  }

  /** A shard's reader moved to another epoch. */
  shardEpoch(shard: EpochShard): void {
    const before = this.seen.get(shard.index) ?? "";
    this.seen.set(shard.index, shard.epoch);
    this.held.delete(shard.index);
    // Its ids restarted under an epoch not above the agreed one (a clock behind, an old copy): the
    // cluster cannot keep that epoch, or a client's positions on this shard would look valid.
    if (!newer(shard.epoch, this.epoch) && shard.epoch !== this.epoch && shard.epoch !== before) this.target = nextEpoch(this.greatest());
    this.settle();
  }

  /** `reset()` moves every shard itself; the bus is told once, at the end. */
  async quietly(run: () => Promise<void>): Promise<void> {
    this.quiet = true;
    try {
      await run();
    } finally {
      this.quiet = false;
    }
    this.settle();
  }

  private greatest(): string {
    return this.shards.reduce((g, s) => (newer(s.epoch, g) ? s.epoch : g), this.epoch);
  }

  private settle(): void {
    if (this.quiet || this.closed) return;
    const want = newer(this.target, this.greatest()) ? this.target : this.greatest();
    const behind = this.shards.filter((s) => s.epoch !== want);
    if (!behind.length) {
      this.target = "";
      if (want === this.epoch) return;
      this.epoch = want;
      try {
        this.events.epoch(want);
        for (const [, list] of this.held) for (const m of list) this.events.message(m);
      } catch (e) {
        this.onError(e);
      }
      this.held.clear();
      return;
    }
    for (const s of behind) {
      if (this.adopting.has(s.index)) continue;
      const done = s
        .adopt(want)
        .catch((e) => {
          // The shard's node is down or failing over: try again, or the cluster never agrees.
          this.onError(e);
          setTimeout(() => this.settle(), 500).unref();
        })
        .finally(() => {
          this.adopting.delete(s.index);
          // Its reader reads the epoch it is now in; the event that brings comes back here.
          this.poke(s);
        });
      this.adopting.set(s.index, done);
    }
  }

  close(): void {
    this.closed = true;
  }
}
