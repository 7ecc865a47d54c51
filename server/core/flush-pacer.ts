/** A clock in ms with sub-ms resolution where the runtime has one. */
const now: () => number = typeof performance === "object" ? () => performance.now() : () => Date.now();

/** A flush that took at least this share of the time between publishes means the loop is busy. */
const BUSY_SHARE = 0.5;
/** A flush cheaper than this is never worth holding: what it could save is less than a held message waits. */
const MIN_HELD_COST_MS = 1;
/** Weight of the newest gap in the running mean of the time between publishes. */
const GAP_WEIGHT = 0.2;

/**
 * Decides when the hub's next flush runs (only when: what it writes, and in what order, is the same).
 * An idle process flushes after this turn's I/O, as soon as it can. A busy one, whose last flush took
 * a large share of the time between publishes, holds the next flush up to `maxDelayMs`, so that the
 * messages of that while go to each connection in one write: a write to a thousand sockets costs
 * about the same for one message as for five (the precedent: Centrifugo's write_delay).
 */
export class FlushPacer {
  private lastPublish = -Infinity;
  /** Running mean of the time between publishes, in ms. */
  private gap = Infinity;
  /** What the last flush took, in ms. */
  private cost = 0;
  private started = 0;

  constructor(private readonly maxDelayMs: number) {}

  /** A message arrived. */
  published(): void {
    const t = now();
    const g = t - this.lastPublish;
    this.lastPublish = t;
    if (g === Infinity) return;
    this.gap = this.gap === Infinity ? g : this.gap + GAP_WEIGHT * (g - this.gap);
  }

  /** How long to hold the flush being scheduled now: 0 when the loop is idle. */
  delay(): number {
    if (this.maxDelayMs <= 0 || this.cost < MIN_HELD_COST_MS || this.cost < BUSY_SHARE * this.gap) return 0;
    return this.maxDelayMs;
  }

  begin(): void {
    this.started = now();
  }

  end(): void {
    this.cost = now() - this.started;
  }
}
