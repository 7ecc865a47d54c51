/**
 * The held polls' shared timer (server/core/hold-queue.ts), on fake timers and a fake clock: each
 * item expires once its time is up and not before, in the order it came, one taken out never
 * does, and an empty queue keeps no timer.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Held, HoldQueue } from "../server/core/hold-queue.js";

class Item implements Held {
  heldPrev: Held | null = null;
  heldNext: Held | null = null;
  heldUntil = 0;
  expiredAt: number | null = null;
  constructor(readonly name: number) {}
  expire(): void {
    expect(this.expiredAt).toBeNull();
    this.expiredAt = performance.now();
  }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("HoldQueue", () => {
  it.each([Infinity, 2 ** 40])("holds for %s ms without a timer that fires every millisecond", (ms) => {
    // Node runs a timer of more than 2^31 - 1 ms (or of Infinity) after 1 ms: one armed with it
    // would wake the process a thousand times a second for as long as a poll is held.
    const armed = vi.spyOn(globalThis, "setTimeout");
    const q = new HoldQueue(ms);
    const a = new Item(1);
    q.add(a);
    vi.advanceTimersByTime(10_000);
    expect(a.expiredAt).toBeNull();
    expect(armed).toHaveBeenCalledTimes(1);
    expect(armed.mock.calls[0][1]).toBe(2 ** 31 - 1);
    q.remove(a);
    expect(vi.getTimerCount()).toBe(0);
    armed.mockRestore();
  });

  it("expires each item when its time is up, not before, and keeps no timer once empty", () => {
    const q = new HoldQueue(1000);
    const a = new Item(1);
    const b = new Item(2);
    q.add(a);
    vi.advanceTimersByTime(400);
    q.add(b);
    vi.advanceTimersByTime(599);
    expect([a.expiredAt, b.expiredAt]).toEqual([null, null]);
    vi.advanceTimersByTime(1);
    expect(a.expiredAt).not.toBeNull();
    expect(b.expiredAt).toBeNull();
    vi.advanceTimersByTime(400);
    expect(b.expiredAt).not.toBeNull();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("an item taken out never expires; taking out one not in the queue changes nothing", () => {
    const q = new HoldQueue(1000);
    const items = [1, 2, 3].map((n) => new Item(n));
    for (const i of items) q.add(i);
    q.remove(items[1]);
    q.remove(items[1]);
    q.remove(new Item(9));
    vi.advanceTimersByTime(1000);
    expect(items.map((i) => i.expiredAt !== null)).toEqual([true, false, true]);
    q.remove(items[0]);
    q.add(items[1]);
    q.remove(items[1]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("any sequence of adds, removals and waits: each item expires once, at its deadline, in order", () => {
    const op = fc.oneof(
      fc.record({ add: fc.constant(true) }),
      fc.record({ remove: fc.nat(20) }),
      fc.record({ wait: fc.integer({ min: 0, max: 700 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        vi.setSystemTime(0);
        const q = new HoldQueue(500);
        const items: { item: Item; added: number; removed: boolean }[] = [];
        const order: number[] = [];
        const log = (i: Item) => () => order.push(i.name);
        for (const o of ops) {
          if ("add" in o) {
            const item = new Item(items.length);
            const expire = item.expire.bind(item);
            item.expire = () => (expire(), log(item)());
            items.push({ item, added: performance.now(), removed: false });
            q.add(item);
          } else if ("remove" in o) {
            const e = items[o.remove];
            if (e && e.item.expiredAt === null) {
              q.remove(e.item);
              e.removed = true;
            }
          } else vi.advanceTimersByTime(o.wait);
        }
        vi.advanceTimersByTime(500);
        for (const { item, added, removed } of items) {
          if (removed) expect(item.expiredAt).toBeNull();
          else expect(item.expiredAt! - added).toBeGreaterThanOrEqual(500);
        }
        expect(order).toEqual([...order].sort((x, y) => x - y));
        expect(vi.getTimerCount()).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
