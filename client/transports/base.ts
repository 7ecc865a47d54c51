import { afterRetryAfter, jitter, linearBackoff, within } from "../backoff.js";
import { HttpError } from "../http.js";
import type { Host, Transport, TransportEvents, TransportName } from "../types.js";

/**
 * What every transport shares: a running flag, one timer for the next attempt, a watchdog that
 * calls a silent connection dead after two heartbeats, and a generation number so a connection that
 * was replaced or stopped can never deliver or report again.
 */
export abstract class BaseTransport implements Transport {
  abstract readonly name: TransportName;
  protected running = false;
  protected gen = 0;
  protected failures = 0;
  private timer?: ReturnType<typeof setTimeout>;
  private watchdog?: ReturnType<typeof setTimeout>;

  constructor(
    protected readonly host: Host,
    protected readonly events: TransportEvents,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.quiet();
    this.gen++;
    this.disconnect();
  }

  retry(ms: number): void {
    this.gen++;
    this.disconnect();
    this.later(ms);
  }

  /** By default a changed set of channels means asking again at once. */
  refresh(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    this.gen++;
    this.disconnect();
    this.connect();
  }

  protected later(ms: number): void {
    clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(() => {
      if (this.running) this.connect();
    }, ms);
  }

  protected current(gen: number): boolean {
    return this.running && gen === this.gen;
  }

  /** Bytes arrived: the connection is alive for two more heartbeats. */
  protected alive(gen: number): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.current(gen)) this.dead();
    }, 2 * this.host.options.heartbeatInterval);
  }

  protected quiet(): void {
    clearTimeout(this.watchdog);
  }

  /**
   * A frame or heartbeat arrived, or (`ended`) an HTTP request completed: lets the negotiator ask
   * shouldLongPollCallback again. Called last, since it may stop this transport.
   */
  protected activity(ended: boolean): void {
    if (this.running) this.events.activity(this, ended);
  }

  /**
   * The server said where to go (a drain, a shutdown): this connection ends, and the same transport
   * connects again at a random moment within `hintMs` (through the load balancer, to another process).
   * Not a failure: nothing is held against the transport.
   */
  protected moveOn(hintMs: number): void {
    this.gen++;
    this.disconnect();
    this.later(Math.max(this.host.options.minPollInterval, within(hintMs)));
  }

  /**
   * A connection that worked was cut without a word (a crash, a proxy): connect again at a random
   * moment within the server's last spread hint, so that a process's clients do not all come back in
   * the same instant. A small server's hint is near 0: then it is at once.
   */
  protected cutAfterWorking(): void {
    this.moveOn(this.host.spreadMs);
  }

  /** The server refused for now and said for how long (overloaded: 503, 429, close 1013): wait, with jitter. */
  protected comeBackAfter(retryAfterMs: number): void {
    this.gen++;
    this.disconnect();
    this.later(Math.max(this.host.options.minPollInterval, afterRetryAfter(retryAfterMs)));
  }

  /** HTTP transports keep going on their own: 429 and 503 wait as told, other errors back off linearly. */
  protected httpError(e: unknown): void {
    const o = this.host.options;
    if (e instanceof HttpError && (e.status === 429 || e.status === 503) && e.retryAfter !== null) {
      return this.comeBackAfter(e.retryAfter);
    }
    this.gen++;
    this.disconnect();
    if (e instanceof HttpError && e.status === 429) {
      this.later(Math.max(o.minPollInterval, o.callbackInterval));
      return;
    }
    this.failures++;
    // The first error after answers that worked is most often a proxy's hiccup (a 502 from an upstream
    // keepalive race, a restart behind nginx) or the server gone (a crash): ask again soon, but spread
    // as the server asked, so its clients do not come back at once. Errors in a row back off linearly.
    if (this.failures === 1) this.later(Math.max(jitter(Math.max(o.minPollInterval, 1000)), within(this.host.spreadMs)));
    else this.later(linearBackoff(this.failures - 1, o.callbackInterval, o.maxPollInterval));
    // A failed request completed too: message-bus-client asks shouldLongPoll after every request.
    this.activity(true);
  }

  protected abstract connect(): void;
  protected abstract disconnect(): void;
  /** Two heartbeats without a byte. */
  protected abstract dead(): void;
}

export function isMessageArray(v: unknown): v is import("../types.js").Message[] {
  return Array.isArray(v);
}
