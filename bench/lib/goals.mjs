#!/usr/bin/env node
// The performance goals (cometbus against the bare servers and the other buses, each one a line
// below) checked against a results file: `node bench/lib/goals.mjs [bench/results/latest.json]`.
import { readFileSync } from "node:fs";

const file = process.argv[2] ?? new URL("../results/latest.json", import.meta.url).pathname;
const r = JSON.parse(readFileSync(file, "utf8"));
const cell = (sc, t) => r.scenarios[sc]?.cells.find((c) => c.target === t && !c.error);
const v = (sc, t, k) => cell(sc, t)?.[k];
const rows = [];
const check = (goal, actual, ok) => rows.push([goal, actual, ok === undefined ? "–" : ok ? "met" : "**missed**"]);
const ratio = (a, b) => (a != null && b ? Math.round((a / b) * 100) / 100 : null);

for (const [t, bare] of [["ws", "bare ws"], ["sse", "bare sse"]]) {
  const us = v("fanout-1k-r20", `cometbus ${t}`, "cpuUsPerDelivery");
  const base = v("fanout-1k-r20", bare, "cpuUsPerDelivery");
  check(`${t}: CPU/delivery at 1k × 20/s ≤ ${bare}`, `${us} vs ${base} µs (${ratio(us, base)}×)`, us != null && base != null ? us <= base : undefined);
  const us1 = v("fanout-1k", `cometbus ${t}`, "cpuUsPerDelivery");
  const base1 = v("fanout-1k", bare, "cpuUsPerDelivery");
  check(`${t}: CPU/delivery at 1k × 100/s ≤ 0.6 × ${bare}`, `${us1} vs ${base1} µs (${ratio(us1, base1)}×)`, us1 != null && base1 != null ? us1 <= 0.6 * base1 : undefined);
  const p99 = v("fanout-1k-r20", `cometbus ${t}`, "p99");
  const others = [bare, `nchan ${t}`].map((b) => `${b} ${v("fanout-1k-r20", b, "p99") ?? "–"}`).join(", ");
  check(`${t}: p99 ≤ 25 ms at 1k × 20/s`, `${p99} ms (${others})`, p99 != null ? p99 <= 25 : undefined);
}
const max = v("fanout-max", "cometbus ws", "deliveriesPerSec");
const sio = v("fanout-max", "socket.io ws", "deliveriesPerSec");
check("ws: max-rate deliveries/s ≥ 2 × socket.io ws", `${max} vs ${sio} (${ratio(max, sio)}×)`, max && sio ? max >= 2 * sio : undefined);
const sseMax = v("fanout-max", "cometbus sse", "deliveriesPerSec");
check("sse: max-rate deliveries/s ≥ 2 × socket.io ws", `${sseMax} vs ${sio} (${ratio(sseMax, sio)}×)`, sseMax && sio ? sseMax >= 2 * sio : undefined);
for (const sc of ["fanout-1k-r20", "fanout-1k"]) {
  const lp = v(sc, "cometbus long-poll", "cpuUsPerDelivery");
  const n = v(sc, "nchan long-poll", "cpuUsPerDelivery");
  check(`long-poll: CPU/delivery ≤ nchan long-poll (${sc})`, `${lp} vs ${n} µs (${ratio(lp, n)}×)`, lp != null && n != null ? lp <= n : undefined);
}
const poll = cell("poll-rps", "cometbus poll");
const hello = cell("poll-rps", "hono hello-world");
if (poll && hello) {
  check(
    "polling: one small response per request",
    `${poll.bytesPerResponse} bytes; ${poll.cpuUsPerRequest} µs/request vs hello-world ${hello.cpuUsPerRequest} (${ratio(poll.cpuUsPerRequest, hello.cpuUsPerRequest)}×)`,
    poll.bytesPerResponse <= 16,
  );
}
let lost = 0;
let dup = 0;
for (const sc of ["fanout-1k-r20", "fanout-1k", "fanout-max"]) {
  for (const c of r.scenarios[sc]?.cells ?? []) if (c.target.startsWith("cometbus") && !c.error) (lost += c.lost), (dup += c.duplicates);
}
check("0 lost, 0 duplicated (every cometbus fan-out cell)", `${lost} lost, ${dup} duplicated`, lost === 0 && dup === 0);
for (const [t, kb] of [["ws", 8], ["sse", 13], ["long-poll", 15]]) {
  const c = cell("idle-10k", `cometbus ${t}`);
  check(`idle ${t}: RSS/connection ≤ ${kb} KB`, c ? `${c.rssPerConnKB} KB (settled ${c.rssSettledPerConnKB}, heap ${c.heapPerConnKB})` : "–", c ? c.rssPerConnKB <= kb : undefined);
}
process.stdout.write(`| goal | measured | |\n|---|---|---|\n${rows.map((x) => `| ${x.join(" | ")} |`).join("\n")}\n`);
