/** The longest delay a timer takes (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Something held until a deadline, linked into its queue by fields of its own. */
export interface Held {
  heldPrev: Held | null;
  heldNext: Held | null;
  /** When it is due, in `performance.now()` ms; set by the queue. */
  heldUntil: number;
  /** Its time is up (it is out of the queue already). */
  expire(): void;
}

/**
 * Every item held for the same `ms` (held long-polls: `longPollTimeout`), with one timer for all of
 * them. A Timeout and its callback closure per held poll were about 200 bytes each of ten thousand
 * idle ones kept. All wait the same time, so they fall due in the order they came: a linked list in
 * that order, its head's deadline the timer's, is the whole schedule; an item that leaves early
 * (answered, replaced, its client gone) unlinks itself at once.
 */
export class HoldQueue {
  private head: Held | null = null;
  private tail: Held | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly ms: number) {}

  add(h: Held): void {
    h.heldUntil = performance.now() + this.ms;
    h.heldPrev = this.tail;
    h.heldNext = null;
    if (this.tail) this.tail.heldNext = h;
    else this.head = h;
    this.tail = h;
    if (!this.timer) this.arm();
  }

  /** Takes `h` out (nothing if it is not in): it will not expire. */
  remove(h: Held): void {
    if (h.heldPrev === null && this.head !== h) return;
    if (h.heldPrev) h.heldPrev.heldNext = h.heldNext;
    else this.head = h.heldNext;
    if (h.heldNext) h.heldNext.heldPrev = h.heldPrev;
    else this.tail = h.heldPrev;
    h.heldPrev = h.heldNext = null;
    if (!this.head && this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private arm(): void {
    // A timer may fire a fraction of a millisecond before a deadline read with performance.now():
    // rounded up, so an item never expires early. A delay past what a timer takes (or none, Infinity:
    // held for ever) fires after 1 ms in Node, again and again: waited out in the longest steps instead.
    const wait = Math.ceil(this.head!.heldUntil - performance.now());
    this.timer = setTimeout(this.fire, wait < 1 ? 1 : wait < MAX_TIMER_MS ? wait : MAX_TIMER_MS);
  }

  private readonly fire = (): void => {
    this.timer = null;
    const now = performance.now();
    try {
      for (let h = this.head; h && h.heldUntil <= now; h = this.head) {
        this.remove(h);
        h.expire();
      }
    } finally {
      if (this.head && !this.timer) this.arm();
    }
  };
}
