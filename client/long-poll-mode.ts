import type { ClientOptions } from "./types.js";

function pageHidden(): boolean {
  return typeof document !== "undefined" && document.visibilityState === "hidden";
}

/**
 * message-bus-client's shouldLongPoll: `alwaysLongPoll || (shouldLongPollCallback ? it() : !hidden)`.
 * "Long-poll mode" here means staying on the live transport (WebSocket, SSE or long-poll); out of it
 * the bus polls every backgroundCallbackInterval. Read on every call, so settings changed on a live
 * bus count from the next look.
 */
export class LongPollMode {
  /** The callback that was last reported for throwing, so a broken one is logged once, not every second. */
  private reported?: () => boolean;

  constructor(private readonly options: ClientOptions) {}

  live(): boolean {
    const o = this.options;
    if (o.alwaysLongPoll) return true;
    if (o.shouldLongPollCallback) {
      try {
        // Called as a method, as message-bus-client does: `this` is the bus.
        return Boolean(o.shouldLongPollCallback());
      } catch (e) {
        // A broken callback must not break the bus: it counts as not set.
        if (this.reported !== o.shouldLongPollCallback) {
          this.reported = o.shouldLongPollCallback;
          console.error("cometbus: shouldLongPollCallback threw; going by page visibility instead", e);
        }
      }
    }
    return !pageHidden();
  }
}
