import { describe, expect, it } from "vitest";
// The comparison page's counter (plain browser JS): the browser test's "0 lost, 0 duplicates" means
// something only if this counts holes and repeats when there are some.
import { Tally } from "../demos/js/tally.js";

const msg = (uid: string, sentAt = 1000, i?: number) => (i === undefined ? { uid, sentAt } : { uid, sentAt, i });

function counts(t: { received: number; lost: number; duplicates: number; resets: number; lastId: number }) {
  return { received: t.received, lost: t.lost, duplicates: t.duplicates, resets: t.resets, lastId: t.lastId };
}

describe("the comparison page's tally", () => {
  it("counts a clean sequence from the starting id, with latencies", () => {
    const t = new Tally(5);
    expect([t.add(msg("a"), 6, 1004), t.add(msg("b"), 7, 1010), t.add(msg("c", 1000, 0), 8, 1001)]).toEqual(["ok", "ok", "ok"]);
    expect(counts(t)).toEqual({ received: 3, lost: 0, duplicates: 0, resets: 0, lastId: 8 });
    expect(t.latencies).toEqual([4, 10, 1]);
    expect(t.last).toBe(1);
    expect(t.percentiles([50, 99])).toEqual([4, 10]);
  });

  it("times a burst's copy from when it was published, not from when the burst was asked for", () => {
    const t = new Tally(0);
    t.add({ uid: "b", sentAt: 1000, i: 0, after: 0 }, 1, 1003);
    t.add({ uid: "b", sentAt: 1000, i: 1, after: 40.5 }, 2, 1044);
    expect(t.latencies).toEqual([3, 3.5]);
  });

  it("counts every id in a hole as lost", () => {
    const t = new Tally(0);
    t.add(msg("a"), 1, 0);
    expect(t.add(msg("d"), 4, 0)).toBe("lost");
    expect(counts(t)).toEqual({ received: 2, lost: 2, duplicates: 0, resets: 0, lastId: 4 });
  });

  it("counts a message seen twice as a duplicate, by key or by an id already passed", () => {
    const t = new Tally(0);
    t.add(msg("a", 1000, 0), 1, 0);
    t.add(msg("a", 1000, 1), 2, 0);
    expect(t.add(msg("a", 1000, 1), 2, 0)).toBe("duplicate");
    expect(t.add({ text: "no key" }, 2, 0)).toBe("duplicate");
    expect(counts(t)).toEqual({ received: 2, lost: 0, duplicates: 2, resets: 0, lastId: 2 });
  });

  it("starts over at id 1 after a reset, whether onReset comes before or after the new epoch's first message", () => {
    const before = new Tally(0);
    before.add(msg("a"), 1, 0);
    before.add(msg("b"), 2, 0);
    before.reset();
    before.add(msg("c"), 1, 0);
    expect(counts(before)).toEqual({ received: 3, lost: 0, duplicates: 0, resets: 1, lastId: 1 });

    const after = new Tally(0);
    after.add(msg("a"), 1, 0);
    after.add(msg("b"), 2, 0);
    after.add(msg("c"), 1, 0); // a new message at an old id: the epoch restarted
    after.add(msg("d"), 2, 0);
    after.reset(); // the client's word arrives late: already counted
    after.add(msg("e"), 3, 0);
    expect(counts(after)).toEqual({ received: 5, lost: 0, duplicates: 0, resets: 1, lastId: 3 });
  });
});
