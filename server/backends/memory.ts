import { type AppendRequest, type Backend, type BackendEvents, randomEpoch, type Snapshot, type StoredMessage } from "../core/backend.js";
import { MemoryLedger } from "./memory-ledger.js";

interface Entry {
  message: StoredMessage;
  expiresAt: number;
}

/**
 * A channel's backlog: an array used as a queue (head index, compacted now and then). Trimming only
 * ever drops a prefix, so ids stay contiguous and a client that lost messages always sees the gap.
 */
class ChannelLog {
  lastId = 0;
  private entries: Entry[] = [];
  private head = 0;
  /** Set once a message expires before one published earlier (per-message maxBacklogAge). */
  private unordered = false;

  push(e: Entry, maxSize: number, now: number): void {
    const last = this.entries[this.entries.length - 1];
    if (last && e.expiresAt < last.expiresAt) this.unordered = true;
    this.entries.push(e);
    const over = this.entries.length - this.head - maxSize;
    if (over > 0) this.dropTo(this.head + over);
    this.expire(now);
  }

  /** Trims the entries before `head`: their slots are cleared at once, so the messages can be freed. */
  private dropTo(head: number): void {
    for (let i = this.head; i < head; i++) this.entries[i] = undefined!;
    this.head = head;
  }

  /** Drops everything up to the newest expired message (a message expiring takes older ones with it). */
  expire(now: number): void {
    const { entries } = this;
    if (this.unordered) {
      for (let i = entries.length - 1; i >= this.head; i--) {
        if (entries[i].expiresAt <= now) {
          this.dropTo(i + 1);
          break;
        }
      }
    } else {
      let head = this.head;
      while (head < entries.length && entries[head].expiresAt <= now) head++;
      this.dropTo(head);
    }
    if (this.head > 1024 && this.head * 2 > entries.length) {
      this.entries = entries.slice(this.head);
      this.head = 0;
    }
  }

  after(id: number, now: number, limit: number): StoredMessage[] {
    this.expire(now);
    const { entries } = this;
    if (this.head >= entries.length) return [];
    // Ids are contiguous, so the index of id+1 is computed, not searched.
    const start = Math.max(this.head, this.head + (id + 1 - entries[this.head].message.message_id));
    const end = Math.min(entries.length, start + limit);
    const out: StoredMessage[] = new Array(Math.max(0, end - start));
    for (let i = start; i < end; i++) out[i - start] = entries[i].message;
    return out;
  }
}

/** The embedded backend: one process, nothing persisted, a new epoch at every start. */
export class MemoryBackend implements Backend {
  readonly kind = "memory";
  epoch = randomEpoch();
  private channels = new Map<string, ChannelLog>();
  private global: StoredMessage[] = [];
  private globalHead = 0;
  private globalId = 0;
  private events?: BackendEvents;
  readonly ledger = new MemoryLedger();

  async start(events: BackendEvents): Promise<void> {
    this.events = events;
  }

  async append(req: AppendRequest): Promise<StoredMessage> {
    const now = Date.now();
    let log = this.channels.get(req.channel);
    if (!log) this.channels.set(req.channel, (log = new ChannelLog()));
    const message: StoredMessage = {
      global_id: ++this.globalId,
      message_id: ++log.lastId,
      channel: req.channel,
      data: req.data,
    };
    Object.defineProperty(message, "dataJson", { value: req.dataJson, enumerable: false });
    if (req.user_ids?.length) message.user_ids = req.user_ids;
    if (req.group_ids?.length) message.group_ids = req.group_ids;
    if (req.client_ids?.length) message.client_ids = req.client_ids;
    if (req.site_id !== undefined) message.site_id = req.site_id;
    log.push({ message, expiresAt: now + req.maxBacklogAge * 1000 }, req.maxBacklogSize, now);
    this.global.push(message);
    const over = this.global.length - this.globalHead - req.maxGlobalBacklogSize;
    // Trimmed slots are cleared at once, so the messages can be freed before the next compaction.
    for (let i = 0; i < over; i++) this.global[this.globalHead++] = undefined!;
    if (this.globalHead > 1024 && this.globalHead * 2 > this.global.length) {
      this.global = this.global.slice(this.globalHead);
      this.globalHead = 0;
    }
    this.events?.message(message);
    return message;
  }

  async backlog(channel: string, afterId: number, limit = Infinity): Promise<StoredMessage[]> {
    return this.channels.get(channel)?.after(afterId, Date.now(), limit) ?? [];
  }

  async globalBacklog(afterGlobalId: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    for (let i = this.globalHead; i < this.global.length; i++) {
      if (this.global[i].global_id > afterGlobalId) out.push(this.global[i]);
    }
    return out;
  }

  async snapshot(channels: Iterable<string>): Promise<Snapshot> {
    const lastIds = new Map<string, number>();
    for (const c of channels) lastIds.set(c, this.channels.get(c)?.lastId ?? 0);
    return { epoch: this.epoch, globalId: this.globalId, lastIds };
  }

  async reset(): Promise<void> {
    this.channels.clear();
    this.global = [];
    this.globalHead = 0;
    this.globalId = 0;
    this.epoch = randomEpoch();
    this.events?.epoch(this.epoch);
  }

  async close(): Promise<void> {
    this.events = undefined;
    this.ledger.close();
  }
}
