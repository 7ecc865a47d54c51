import type { FallbackReason } from "../src/fallback.js";
import { doublingBackoff } from "./backoff.js";
import { reportFallback } from "./http.js";
import { ModeWatch } from "./mode-watch.js";
import { recall, remember } from "./remember.js";
import type { Host, Transport, TransportEvents, TransportName } from "./types.js";

const HTTP: TransportName[] = ["long-poll", "poll"];
const KNOWN: TransportName[] = ["websocket", "sse", ...HTTP];
/** A transport that worked this long before it failed starts its backoff afresh. */
const STABLE_MS = 60_000;

export type TransportFactory = (name: TransportName, events: TransportEvents) => Transport;

/**
 * Negotiation (README, "Client"; each transport's wire: docs/protocol.md#6-transports). One
 * transport is active and delivers; a better one is probed beside it and takes over once it has
 * proved itself. Both read and write the same positions, so the overlap is harmless.
 * A transport that fails gives way at once to the next one down and rests (doubling, capped,
 * jittered) before it is probed again. A hidden tab (or one shouldLongPollCallback sends to the
 * background) polls slowly until it is live again.
 */
export class Negotiator implements TransportEvents {
  active: Transport | null = null;
  private probe: Transport | null = null;
  private pool = new Map<TransportName, Transport>();
  private strikes = new Map<TransportName, number>();
  private restUntil = new Map<TransportName, number>();
  private upAt = new Map<TransportName, number>();
  private timer?: ReturnType<typeof setTimeout>;
  private backgroundMode = false;
  private readonly watch = new ModeWatch(
    () => this.active !== null && !!this.host.options.shouldLongPollCallback,
    () => this.checkMode(),
  );

  constructor(
    private readonly host: Host,
    private readonly create: TransportFactory,
    private readonly changed: (name: TransportName | null) => void,
  ) {}

  get running(): boolean {
    return this.active !== null;
  }

  /** The preference order, as configured, without what the settings rule out. */
  private order(): TransportName[] {
    const o = this.host.options;
    const list = o.transports.filter(
      (n, i) => KNOWN.includes(n) && o.transports.indexOf(n) === i && (o.enableLongPolling || n !== "long-poll"),
    );
    return list.length ? list : ["poll"];
  }

  private get(name: TransportName): Transport {
    let t = this.pool.get(name);
    if (!t) this.pool.set(name, (t = this.create(name, this)));
    return t;
  }

  private halt(t: Transport | null): void {
    if (!t) return;
    t.stop();
    this.upAt.delete(t.name);
  }

  private resting(name: TransportName): boolean {
    return (this.restUntil.get(name) ?? 0) > Date.now();
  }

  start(): void {
    this.backgroundMode = false;
    if (this.host.background()) this.enterBackground();
    else {
      const list = this.order();
      const known = recall(this.host.url("poll"));
      // Deliver at once on what worked last time, or on plain HTTP, which always gets through.
      const first =
        (known && list.includes(known) && !this.resting(known) ? known : null) ??
        list.find((n) => HTTP.includes(n) && !this.resting(n)) ??
        list.find((n) => !this.resting(n)) ??
        list[list.length - 1];
      this.activate(first);
      this.consider();
    }
    this.watch.arm();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.watch.stop();
    this.halt(this.probe);
    this.halt(this.active);
    this.probe = null;
    if (this.active) {
      this.active = null;
      this.changed(null);
    }
  }

  /** The channels changed. */
  refresh(): void {
    this.active?.refresh();
    this.probe?.refresh();
  }

  /**
   * Connects the active transport again at once, on the same transport (the tab sharing layer: the
   * server must hear positions it cannot take on a live connection). A probe goes, so that the
   * answer to the new connection is the only one that can come next; it is probed again later.
   */
  restart(): void {
    if (!this.active) return;
    this.halt(this.probe);
    this.probe = null;
    clearTimeout(this.timer);
    this.active.retry(0);
  }

  /** The page was hidden or shown, or shouldLongPollCallback may have changed its answer. */
  checkMode(): void {
    if (!this.active) return;
    const background = this.host.background();
    if (background && !this.backgroundMode) this.enterBackground();
    else if (!background && this.backgroundMode) {
      this.stop();
      this.start();
    }
  }

  activity(t: Transport, ended: boolean): void {
    if (t !== this.active && t !== this.probe) return;
    if (ended) this.watch.now();
    else this.watch.frame();
  }

  private enterBackground(): void {
    this.backgroundMode = true;
    clearTimeout(this.timer);
    this.halt(this.probe);
    this.probe = null;
    if (this.active && this.active.name !== "poll") reportFallback(this.host, { from: this.active.name, to: "poll", reason: "hidden" });
    if (this.active?.name !== "poll") this.activate("poll");
  }

  private activate(name: TransportName): void {
    const next = this.get(name);
    if (this.active === next) return;
    this.halt(this.active);
    this.active = next;
    next.start();
    this.changed(name);
  }

  /** Probes the best transport above the active one that is not resting, or waits until one is rested. */
  private consider(): void {
    clearTimeout(this.timer);
    if (this.probe || !this.active || this.backgroundMode) return;
    // Two connections both asking for "new only" (-1) could disagree on where "now" is; the active
    // one settles every such position first (its answer names them), then probing is safe.
    if (Object.values(this.host.subscription()).includes(-1)) return;
    const list = this.order();
    const at = list.indexOf(this.active.name);
    const better = list.slice(0, at < 0 ? list.length : at);
    const ready = better.find((n) => !this.resting(n));
    if (ready) {
      this.probe = this.get(ready);
      this.probe.start();
      return;
    }
    if (!better.length) return;
    const wake = Math.min(...better.map((n) => this.restUntil.get(n) ?? 0));
    this.timer = setTimeout(() => this.consider(), Math.max(0, wake - Date.now()) + 1);
  }

  up(t: Transport): void {
    if (t === this.probe) {
      this.probe = null;
      const old = this.active;
      this.active = t;
      this.halt(old);
      this.changed(t.name);
    } else if (t !== this.active) return;
    // A connection that comes up and dies again at once must not reset its backoff: only time up does.
    if (!this.upAt.has(t.name)) this.upAt.set(t.name, Date.now());
    if (!this.backgroundMode) remember(this.host.url("poll"), t.name);
    this.consider();
  }

  fail(t: Transport, why: string, retryAfterMs?: number): void {
    if (t !== this.probe && t !== this.active) return;
    const o = this.host.options;
    const since = this.upAt.get(t.name);
    this.upAt.delete(t.name);
    if (since !== undefined && Date.now() - since > STABLE_MS) this.strikes.delete(t.name);
    const strikes = (this.strikes.get(t.name) ?? 0) + 1;
    this.strikes.set(t.name, strikes);
    const rest = retryAfterMs ?? doublingBackoff(strikes, o.retryTransportInterval, o.maxPollInterval);
    this.restUntil.set(t.name, Date.now() + rest);
    if (t === this.probe) {
      this.halt(t);
      this.probe = null;
      return this.consider();
    }
    const list = this.order();
    const lower = list.slice(list.indexOf(t.name) + 1).find((n) => !this.resting(n));
    if (lower) {
      reportFallback(this.host, { from: t.name, to: lower, reason: reasonOf(why) });
      this.activate(lower);
    } else if (since !== undefined && retryAfterMs === undefined) {
      // Nothing to fall back to, and this connection was working until it was cut (a server
      // restart, a proxy's timeout, a dropped socket): resume at once from the positions held,
      // doubling from minPollInterval only if it keeps being cut.
      t.retry(doublingBackoff(strikes, o.minPollInterval, o.maxPollInterval));
    } else {
      // Nothing to fall back to, and it never worked: try again once rested.
      t.retry(rest);
    }
    this.consider();
  }
}

/** A transport's words for giving up (client/transports/), as a report's reason (docs/protocol.md#13-fallback-reports). */
function reasonOf(why: string): FallbackReason {
  if (why.startsWith("silent")) return "silent";
  if (why.includes("(buffered)") || why.includes("before its first event") || why.includes("not an event stream")) return "buffered";
  if (why.startsWith("not welcomed")) return "no-welcome";
  if (why.startsWith("cannot open") || why.startsWith("closed") || /^HTTP \d/.test(why) || why.includes("fetch")) return "refused";
  return "error";
}
