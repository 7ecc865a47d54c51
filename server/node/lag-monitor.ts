import { monitorEventLoopDelay } from "node:perf_hooks";

/** How long one reading of the event loop's delay spans. */
const WINDOW_MS = 1000;

/**
 * The event loop's delay as Node measures it (perf_hooks), over the last second: the worst delay a
 * timer saw. A process whose loop lags this much answers everything late, the new connections it
 * would take included.
 */
export class LagMonitor {
  private readonly histogram = monitorEventLoopDelay({ resolution: 20 });
  private last = 0;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor() {
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.last = this.histogram.max / 1e6;
      this.histogram.reset();
    }, WINDOW_MS);
    this.timer.unref();
  }

  /** The worst delay of the last second, in ms (or of this second so far, when it is worse). */
  get lagMs(): number {
    return Math.max(this.last, this.histogram.max / 1e6);
  }

  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}
