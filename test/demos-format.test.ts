import fc from "fast-check";
import { describe, expect, it } from "vitest";
// The comparison page's stat cells are sized for the widest reading of each unit; a value at a unit's
// edge (9.96 ms, 999.7 ms, 10,239 B) once read one digit wider ("10.0 ms") and was cut off on a phone.
import { bytes, ms } from "../demos/js/format.js";

describe("the demo pages' number formats", () => {
  it("never read wider than the unit's widest form, at any value up to 100 s / 1 GB", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 99_949, noNaN: true }), (v) => {
        expect(ms(v)).toMatch(/^(\d\.\d ms|\d{2,3} ms|\d\.\d\d s|\d\d\.\d s)$/);
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1023 * 1024 * 1024 }), (v) => {
        expect(bytes(v)).toMatch(/^(\d{1,4} B|\d\.\d KB|\d{2,4} KB|\d{1,4}\.\d MB)$/);
      }),
      { numRuns: 5000 },
    );
  });

  it("reads the edges as the next unit or width, not one digit too many", () => {
    expect([9.94, 9.96, 999.4, 999.6, 9994, 9996].map(ms)).toEqual(["9.9 ms", "10 ms", "999 ms", "1.00 s", "9.99 s", "10.0 s"]);
    expect([10_188, 10_239, 1_047_999].map(bytes)).toEqual(["9.9 KB", "10 KB", "1023 KB"]);
  });
});
