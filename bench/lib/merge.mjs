#!/usr/bin/env node
// Several partial runs as one results file, for goals.mjs and table.mjs: `node bench/lib/merge.mjs
// out.json a.json b.json …`. A scenario's cells are those of every run, but a target measured again
// in a later run keeps only its later cells. The machine and date are the first run's; the load
// average at each run's start is kept.
import { readFileSync, writeFileSync } from "node:fs";

const [out, ...files] = process.argv.slice(2);
const runs = files.map((f) => JSON.parse(readFileSync(f, "utf8")));
const merged = { ...runs[0], merged: files, loadAverageAtStart: runs[0].loadAverageAtStart, loadAverages: runs.map((r) => r.loadAverageAtStart), scenarios: {} };
for (const r of runs) {
  for (const [name, sc] of Object.entries(r.scenarios)) {
    const again = new Set(sc.cells.map((c) => c.target));
    const kept = merged.scenarios[name]?.cells.filter((c) => !again.has(c.target)) ?? [];
    merged.scenarios[name] = { ...sc, cells: [...kept, ...sc.cells] };
  }
}
merged.minutes = runs.reduce((a, r) => a + (r.minutes ?? 0), 0);
writeFileSync(out, JSON.stringify(merged, null, 2) + "\n");
