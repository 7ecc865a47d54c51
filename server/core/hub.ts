import { FlushPacer } from "./flush-pacer.js";
import type { Outgoing } from "./outgoing.js";
import type { Subscriber, SubscriberHost, TransportKind } from "./subscriber.js";
import { Tally } from "./tally.js";

/** After the I/O of this turn, so a burst of publishes is flushed once (setTimeout where there is no setImmediate). */
const afterIo: (fn: () => void) => void =
  typeof setImmediate === "function" ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/** A timer that does not keep the process alive, on runtimes that can say so. */
function unref(timer: unknown): void {
  (timer as { unref?(): void }).unref?.();
}

/** How often a drain tells its next batch of connections to move. */
const DRAIN_TICK_MS = 100;
/** How often connections are asked whether a hint they were given has changed. */
const HINT_TICK_MS = 1000;

const NO_KINDS = (): Record<TransportKind, number> => ({ poll: 0, "long-poll": 0, chunked: 0, sse: 0, websocket: 0, server: 0 });

/**
 * channel → subscribers in this process, and the once-per-tick flush: a subscriber that has several
 * messages due gets them in one write.
 */
export class Hub implements SubscriberHost {
  private channels = new Map<string, Set<Subscriber>>();
  readonly subscribers = new Set<Subscriber>();
  private dirty: Subscriber[] = [];
  private scheduled = false;
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private readonly hintTimer: ReturnType<typeof setInterval>;
  /** Subscribers by kind, kept as they come and go: read for every new connection's hints. */
  private readonly kinds = NO_KINDS();
  delivered = 0;
  /** When flushes run: at once when idle, held a little when busy (flush-pacer.ts). */
  readonly pacer: FlushPacer;
  readonly tally = new Tally();

  constructor(
    heartbeatMs: number,
    /** Where a subscriber that throws is reported; it is closed, and the others go on. */
    private readonly onError: (e: unknown) => void,
    /** The most a busy process holds a flush, in ms (the `flushDelay` option); 0 never holds. */
    flushDelayMs = 0,
  ) {
    this.pacer = new FlushPacer(flushDelayMs);
    // The passes over every subscriber (these, publish and flush) call each one in a try of their
    // own, not through `guard` and a closure per subscriber: ten thousand idle streams then cost
    // ten thousand closures a second, and a process that never stops allocating never looks idle
    // to V8, which then keeps the heap's empty pages (the RSS of 10,000 idle SSE streams stayed
    // ~3 KB per stream above what it settles at without them).
    if (heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => {
        for (const s of this.subscribers) {
          try {
            s.heartbeat();
          } catch (e) {
            this.failed(s, e);
          }
        }
      }, heartbeatMs);
      unref(this.heartbeatTimer);
    }
    // Hints that change as the process fills or empties (the spread) are retold within a second, not
    // a heartbeat (25 s) later: the first clients after a deploy were told ~0 ms.
    this.hintTimer = setInterval(() => {
      for (const s of this.subscribers) {
        try {
          s.retell();
        } catch (e) {
          this.failed(s, e);
        }
      }
    }, HINT_TICK_MS);
    unref(this.hintTimer);
  }

  /** Runs `fn` for one subscriber: one that throws must not cost the others their messages. */
  private guard(s: Subscriber, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.failed(s, e);
    }
  }

  /** A subscriber threw: reported and closed (or, if closing throws too, dropped); the others go on. */
  private failed(s: Subscriber, e: unknown): void {
    this.onError(e);
    try {
      s.close();
    } catch {
      this.remove(s, [...s.positions.keys()], true);
    }
  }

  add(sub: Subscriber, channels: readonly string[]): void {
    if (!this.subscribers.has(sub)) {
      this.subscribers.add(sub);
      this.kinds[sub.kind]++;
    }
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
    if (all && this.subscribers.delete(sub)) this.kinds[sub.kind]--;
  }

  publish(o: Outgoing): void {
    this.pacer.published();
    const set = this.channels.get(o.channel);
    if (!set) return;
    for (const s of set) {
      try {
        s.offer(o);
      } catch (e) {
        this.failed(s, e);
      }
    }
  }

  markDirty(s: Subscriber): void {
    this.dirty.push(s);
    if (!this.scheduled) {
      this.scheduled = true;
      const hold = this.pacer.delay();
      if (hold > 0) setTimeout(this.flush, hold);
      else afterIo(this.flush);
    }
  }

  private flush = (): void => {
    this.scheduled = false;
    const dirty = this.dirty;
    this.dirty = [];
    this.pacer.begin();
    for (const s of dirty) {
      const batch = s.takePending();
      if (!batch) continue;
      this.delivered += batch.length;
      this.tally.delivered[s.kind] += batch.length;
      try {
        s.send(batch, null);
      } catch (e) {
        this.failed(s, e);
      }
    }
    this.pacer.end();
  };

  resetEpoch(epoch: string): void {
    for (const s of [...this.subscribers]) this.guard(s, () => s.resetEpoch(epoch));
  }

  countByKind(): Record<TransportKind, number> {
    return { ...this.kinds };
  }

  /** Connections held: every subscriber but the server's own. */
  get connections(): number {
    return this.subscribers.size - this.kinds.server;
  }

  /**
   * Tells every connection to move (Subscriber.move), over `windowMs`: a batch every tick, in random
   * order, each told to come back within `hintMs`. A deploy's reconnections then reach the other
   * processes at an even rate instead of all at once. Resolves once every one was told.
   */
  drain(windowMs: number, hintMs: number): Promise<void> {
    const list = [...this.subscribers].filter((s) => s.kind !== "server");
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [list[i], list[j]] = [list[j], list[i]];
    }
    const per = Math.max(1, Math.ceil((list.length * DRAIN_TICK_MS) / Math.max(windowMs, DRAIN_TICK_MS)));
    return new Promise((resolve) => {
      let next = 0;
      const step = () => {
        for (const s of list.slice(next, next + per)) if (!s.closed) this.guard(s, () => s.move(hintMs));
        next += per;
        if (next >= list.length) resolve();
        else setTimeout(step, DRAIN_TICK_MS);
      };
      step();
    });
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /**
   * Shuts down: every connection told to move at once, each to come back within `hintMs` (so they
   * spread their own reconnections), the server's own subscribers closed.
   */
  close(hintMs = 0): void {
    clearInterval(this.heartbeatTimer);
    clearInterval(this.hintTimer);
    for (const s of [...this.subscribers]) this.guard(s, () => (s.kind === "server" ? s.close() : s.move(hintMs)));
    this.subscribers.clear();
    this.channels.clear();
    Object.assign(this.kinds, NO_KINDS());
  }
}
