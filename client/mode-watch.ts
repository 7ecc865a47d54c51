/** The fastest a live bus asks shouldLongPollCallback again, by timer or by frames. */
const MODE_CHECK_MS = 1000;

/**
 * When to ask again whether to stay live. Visibility has an event, but shouldLongPollCallback can
 * change its answer without one (the user went idle), so while it is set a timer asks once a second.
 * Frames and heartbeats ask too, no more often: a hidden tab's timers may be throttled to once a
 * minute, while its connection still hears every heartbeat. Completed HTTP requests ask every time
 * (message-bus-client's moment; they come at most every minPollInterval).
 */
export class ModeWatch {
  private timer?: ReturnType<typeof setTimeout>;
  private last = 0;

  constructor(
    /** Whether a timer is worth running: the bus is running and has a callback to ask. */
    private readonly wanted: () => boolean,
    private readonly check: () => void,
  ) {}

  /** Asks now, then again MODE_CHECK_MS later. */
  now(): void {
    this.last = Date.now();
    this.check();
    this.arm();
  }

  /** A frame or heartbeat arrived. */
  frame(): void {
    if (Date.now() - this.last >= MODE_CHECK_MS) this.now();
  }

  /** (Re)starts the timer if it is wanted; a callback set on a live bus is found at the next look. */
  arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.wanted()) this.timer = setTimeout(() => this.now(), MODE_CHECK_MS);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
