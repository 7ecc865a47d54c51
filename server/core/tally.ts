import type { FallbackReport } from "../../src/fallback.js";
import type { TransportKind } from "./kinds.js";

/** Why a subscriber's asked position could not be honoured (docs/protocol.md#41-where-a-subscriber-starts). */
export type ResetReason = "epoch" | "trimmed" | "past-end" | "bus-reset";
export type PublishFailure = "store" | "invalid" | "closed";

const byKind = (): Record<TransportKind, number> => ({ poll: 0, "long-poll": 0, chunked: 0, sse: 0, websocket: 0, server: 0 });

/**
 * What happened in this process, as plain counters: an increment where it happens, nothing else.
 * The metrics endpoint (server/prometheus.ts) reads them when scraped, so a bus without metrics
 * pays one integer add per event and no library.
 */
export class Tally {
  /** Publishes of this process the store acknowledged. */
  published = 0;
  readonly delivered = byKind();
  readonly catchUps = byKind();
  readonly slowCuts = byKind();
  readonly resets: Record<ResetReason, number> = { epoch: 0, trimmed: 0, "past-end": 0, "bus-reset": 0 };
  readonly publishFailures: Record<PublishFailure, number> = { store: 0, invalid: 0, closed: 0 };
  /** Subscribes and publishes answered "the store is unavailable" (503, WebSocket 1013). */
  readonly storeUnavailable = { publish: 0, subscribe: 0 };
  /** "from,to,reason" → reports; a closed set of keys (src/fallback.ts). */
  readonly fallbacks = new Map<string, number>();
  /** The seconds named by `proxy-cut` reports, summed (their count is the fallbacks' proxy-cut rows). */
  proxyCutSeconds = 0;

  /** A subscribe read: a catch-up if it read the backlog (asked a position, or the last N), with the resets it found. */
  caughtUp(kind: TransportKind, asked: Iterable<number>, resets: readonly ResetReason[]): void {
    for (const p of asked) {
      if (p === -1) continue;
      this.catchUps[kind]++;
      break;
    }
    for (const why of resets) this.resets[why]++;
  }

  fallback(r: FallbackReport): void {
    const key = `${r.from},${r.to},${r.reason}`;
    this.fallbacks.set(key, (this.fallbacks.get(key) ?? 0) + 1);
    if (r.seconds !== undefined) this.proxyCutSeconds += r.seconds;
  }
}
