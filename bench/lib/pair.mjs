#!/usr/bin/env node
// Two runs side by side, each cell "first / second": `node bench/lib/pair.mjs a.json b.json`.
import { readFileSync } from "node:fs";
import { markdown } from "./table.mjs";

const [a, b] = process.argv.slice(2).map((f) => JSON.parse(readFileSync(f, "utf8")));
const both = (x, y) => (x === y || y === undefined ? x : `${x ?? "–"} / ${y ?? "–"}`);
for (const [name, sc] of Object.entries(a.scenarios)) {
  const other = b.scenarios[name]?.cells ?? [];
  sc.cells = sc.cells.map((c) => {
    const d = other.find((o) => o.target === c.target);
    if (!d || c.error || d.error) return c.error ? c : { ...c, error: d?.error ? `second run: ${d.error}` : undefined };
    const out = { target: c.target };
    for (const k of Object.keys(c)) if (k !== "target") out[k] = both(c[k], d[k]);
    return out;
  });
}
process.stdout.write(`Two runs: ${a.date} / ${b.date}\n\n` + markdown(a));
