import type { Outgoing } from "./outgoing.js";
import type { Subscriber, SubscriberHost, TransportKind } from "./subscriber.js";

/**
 * channel → subscribers in this process, and the once-per-tick flush: a subscriber that has several
 * messages due gets them in one write.
 */
export class Hub implements SubscriberHost {
  private channels = new Map<string, Set<Subscriber>>();
  readonly subscribers = new Set<Subscriber>();
  private dirty: Subscriber[] = [];
  private scheduled = false;
  private heartbeatTimer?: NodeJS.Timeout;
  delivered = 0;

  constructor(
    heartbeatMs: number,
    /** Where a subscriber that throws is reported; it is closed, and the others go on. */
    private readonly onError: (e: unknown) => void,
  ) {
    if (heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => {
        for (const s of this.subscribers) this.guard(s, () => s.heartbeat());
      }, heartbeatMs);
      this.heartbeatTimer.unref();
    }
  }

  /** Runs `fn` for one subscriber: one that throws must not cost the others their messages. */
  private guard(s: Subscriber, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.onError(e);
      try {
        s.close();
      } catch {
        this.remove(s, [...s.positions.keys()], true);
      }
    }
  }

  add(sub: Subscriber, channels: readonly string[]): void {
    this.subscribers.add(sub);
    for (const ch of channels) {
      let set = this.channels.get(ch);
      if (!set) this.channels.set(ch, (set = new Set()));
      set.add(sub);
    }
  }

  remove(sub: Subscriber, channels: readonly string[], all: boolean): void {
    for (const ch of channels) {
      const set = this.channels.get(ch);
      if (set?.delete(sub) && set.size === 0) this.channels.delete(ch);
    }
    if (all) this.subscribers.delete(sub);
  }

  publish(o: Outgoing): void {
    const set = this.channels.get(o.channel);
    if (set) for (const s of set) this.guard(s, () => s.offer(o));
  }

  markDirty(s: Subscriber): void {
    this.dirty.push(s);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private flush = (): void => {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    for (const s of dirty) {
      const batch = s.takePending();
      if (!batch) continue;
      this.delivered += batch.length;
      this.guard(s, () => s.send(batch, null));
    }
  };

  resetEpoch(epoch: string): void {
    for (const s of [...this.subscribers]) this.guard(s, () => s.resetEpoch(epoch));
  }

  countByKind(): Record<TransportKind, number> {
    const counts: Record<TransportKind, number> = { poll: 0, "long-poll": 0, chunked: 0, sse: 0, websocket: 0, server: 0 };
    for (const s of this.subscribers) counts[s.kind]++;
    return counts;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  close(): void {
    clearInterval(this.heartbeatTimer);
    for (const s of [...this.subscribers]) this.guard(s, () => s.close());
    this.subscribers.clear();
    this.channels.clear();
  }
}
