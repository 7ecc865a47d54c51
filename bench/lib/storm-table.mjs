#!/usr/bin/env node
// The deploy-storm runs (bench/storm.mjs JSONs) as one markdown table, a row per run.
//
//   node bench/lib/storm-table.mjs a.json b.json … [--md out.md]
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const SHORT = { websocket: "ws", sse: "sse", "long-poll": "lp", poll: "poll", none: "none" };
const ORDER = ["websocket", "sse", "long-poll", "poll", "none"];

const s = (ms) => (ms === null || ms === undefined ? "–" : (ms / 1000).toFixed(2));
const num = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? v.toLocaleString("en-US") : String(v));

/** `{ websocket: 990, sse: 10 }` → "ws 990, sse 10". */
export function transports(o) {
  if (!o) return "–";
  return Object.entries(o)
    .sort((a, b) => ORDER.indexOf(a[0]) - ORDER.indexOf(b[0]))
    .map(([k, v]) => `${SHORT[k] ?? k} ${v}`)
    .join(", ");
}

const COLUMNS = [
  ["run", (r) => r.label],
  ["N", (r) => num(r.params.clients)],
  ["cut", (r) => (r.params.cut === "term" ? "SIGTERM" : "SIGKILL")],
  ["window ms", (r) => num(r.params.window)],
  ["on at T0", (r) => transports(r.transports.atT0)],
  ["recovered", (r) => `${num(r.recovery.recovered)}/${num(r.recovery.clients)}`],
  ["p50 s", (r) => s(r.recovery.p50Ms)],
  ["p90 s", (r) => s(r.recovery.p90Ms)],
  ["p99 s", (r) => s(r.recovery.p99Ms)],
  ["max s", (r) => s(r.recovery.maxMs)],
  ["peak arrivals /100 ms at B", (r) => num(r.arrivals.peak) + (r.drainLimitPer100ms === null ? "" : ` (≤ ${num(r.drainLimitPer100ms)})`)],
  ["arrivals at B", (r) => num(r.arrivals.total)],
  ["B CPU peak % (100 ms / 1 s)", (r) => `${num(r.b.peakPct)} / ${num(r.b.peak1sPct)}`],
  ["B RSS peak MB", (r) => num(r.b.rssPeakMB)],
  ["fell lower", (r) => `${num(r.transports.fellLower)} (to ${transports(r.transports.fellTo)})`],
  ["back on T0 transport p50 / max s", (r) => `${s(r.transports.backOnT0TransportMs.p50)} / ${s(r.transports.backOnT0TransportMs.max)}`],
  ["on at end", (r) => transports(r.transports.atEnd)],
  ["lost", (r) => num(r.delivery.lost)],
  ["dup", (r) => num(r.delivery.duplicated)],
  ["ooo", (r) => num(r.delivery.outOfOrder)],
  ["A exited", (r) => (r.a.stillRunning ? "still running" : `${r.a.signal ?? `code ${r.a.code}`} at ${s(r.a.afterMs)} s`)],
  ["load", (r) => num(r.load.start[0])],
];

export function markdownTable(runs) {
  const head = `| ${COLUMNS.map(([h]) => h).join(" | ")} |`;
  const rule = `|${COLUMNS.map(([h], i) => (i < 4 || /transport|on at|fell|run/.test(h) ? "---" : "---:")).join("|")}|`;
  const rows = runs.map((r) => `| ${COLUMNS.map(([, f]) => f(r)).join(" | ")} |`);
  return [head, rule, ...rows].join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { md: { type: "string" } } });
  const runs = positionals.map((f) => JSON.parse(readFileSync(f, "utf8")));
  const md = markdownTable(runs) + "\n";
  if (values.md) writeFileSync(values.md, md);
  else process.stdout.write(md);
}
