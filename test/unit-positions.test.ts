/**
 * A subscriber's positions (server/core/positions.ts) behave as the Map they replace: the same
 * answers, the same order, for any sequence of sets and deletes, across the change from one
 * channel in fields to a Map.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Positions } from "../server/core/positions.js";

describe("Positions", () => {
  it("any sequence of sets and deletes answers as a Map does", () => {
    const channel = fc.constantFrom("/a", "/b", "/c");
    const op = fc.oneof(fc.tuple(fc.constant("set" as const), channel, fc.integer({ min: -1, max: 100 })), fc.tuple(fc.constant("delete" as const), channel, fc.constant(0)));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const p = new Positions();
        const m = new Map<string, number>();
        for (const [what, ch, pos] of ops) {
          if (what === "set") {
            expect(p.set(ch, pos)).toBe(p);
            m.set(ch, pos);
          } else expect(p.delete(ch)).toBe(m.delete(ch));
          expect(p.size).toBe(m.size);
          expect(p.keys()).toEqual([...m.keys()]);
          expect(p.values()).toEqual([...m.values()]);
          expect([...p]).toEqual([...m]);
          for (const c of ["/a", "/b", "/c"]) {
            expect(p.get(c)).toBe(m.get(c));
            expect(p.has(c)).toBe(m.has(c));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("keys() is a copy: positions can be changed while going through it", () => {
    const p = new Positions().set("/a", 1).set("/b", 2);
    for (const ch of p.keys()) p.set(ch, 0);
    expect(p.entries()).toEqual([["/a", 0], ["/b", 0]]);
    const one = new Positions().set("/a", 5);
    for (const ch of one.keys()) one.delete(ch);
    expect(one.size).toBe(0);
  });
});
