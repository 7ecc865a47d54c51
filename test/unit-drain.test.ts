/**
 * The hub's drain, on fake timers: every connection is told to move once, in batches spread evenly
 * over the window (docs/protocol.md#75-moving-spreading-and-shedding), the server's own subscribers stay, and a connection
 * that left meanwhile is not told. The real processes and clients are in deploy-*.test.ts.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Hub } from "../server/core/hub.js";
import type { Outgoing } from "../server/core/outgoing.js";
import { ServerSubscriber } from "../server/core/server-subscriber.js";
import { Subscriber } from "../server/core/subscriber.js";

class FakeConnection extends Subscriber {
  readonly kind = "websocket";
  movedAt: number | null = null;
  hint = -1;
  send(_batch: readonly Outgoing[]): void {}
  close(): void {
    this.closed = true;
    this.leave();
  }
  move(hintMs: number): void {
    this.movedAt = Date.now();
    this.hint = hintMs;
    this.close();
  }
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function hubWith(n: number): { hub: Hub; conns: FakeConnection[] } {
  const hub = new Hub(0, (e) => {
    throw e;
  });
  const conns = Array.from({ length: n }, (_, i) => {
    const c = new FakeConnection(hub, { clientId: `c${i}` });
    hub.add(c, ["/a"]);
    return c;
  });
  return { hub, conns };
}

/** Moves per 100 ms from the start of the drain. */
function perTick(conns: FakeConnection[], t0: number): number[] {
  const buckets: number[] = [];
  for (const c of conns) {
    const b = Math.floor((c.movedAt! - t0) / 100);
    buckets[b] = (buckets[b] ?? 0) + 1;
  }
  return Array.from(buckets, (v) => v ?? 0);
}

describe("Hub.drain", () => {
  it("tells every connection once, within the window, never more per 100 ms than an even spread's share", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 0, max: 20_000 }), async (n, window) => {
        const { hub, conns } = hubWith(n);
        const t0 = Date.now();
        let done = false;
        void hub.drain(window, 1000).then(() => (done = true));
        await vi.advanceTimersByTimeAsync(window + 200);
        expect(done).toBe(true);
        expect(conns.every((c) => c.movedAt !== null && c.hint === 1000)).toBe(true);
        expect(hub.connections).toBe(0);
        const ticks = perTick(conns, t0);
        // Spread over the window: the last batch no later than its last tick.
        expect(ticks.length).toBeLessThanOrEqual(Math.max(1, Math.ceil(window / 100)));
        const share = Math.ceil((n * 100) / Math.max(window, 100));
        expect(Math.max(...ticks)).toBeLessThanOrEqual(share);
      }),
      { numRuns: 60 },
    );
  });

  it("keeps the server's own subscribers, and does not tell a connection that left before its turn", async () => {
    const { hub, conns } = hubWith(100);
    const own = new ServerSubscriber(hub, () => {}, () => {});
    hub.add(own, ["/a"]);
    void hub.drain(10_000, 1000);
    // Gone before their turn: most of them, since the first batch is 1 of 100.
    const gone = conns.filter((c) => c.movedAt === null).slice(0, 50);
    for (const c of gone) c.close();
    await vi.advanceTimersByTimeAsync(10_100);
    expect(gone.every((c) => c.movedAt === null)).toBe(true);
    expect(conns.filter((c) => c.movedAt !== null)).toHaveLength(50);
    expect(own.closed).toBe(false);
    expect(hub.countByKind().server).toBe(1);
  });
});
