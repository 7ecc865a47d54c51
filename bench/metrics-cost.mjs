#!/usr/bin/env node
// The per-delivery CPU cost of metrics: the fanout-1k-r20 cell (1000 subscribers, 20 msg/s, 15 s)
// for cometbus ws and sse, metrics off and on (scraped every second), in pairs whose order alternates, in one run, so
// the ratio on/off is measured against a baseline of the same moment on the same machine.
//
//   node bench/metrics-cost.mjs [--repeat 1] [--quick]
import { execFileSync } from "node:child_process";
import os from "node:os";
import { parseArgs } from "node:util";
import { SCENARIOS } from "./scenarios/index.mjs";

const { values } = parseArgs({ options: { repeat: { type: "string", default: "1" }, quick: { type: "boolean", default: false } } });
const root = new URL("..", import.meta.url).pathname;
// As bench/run.mjs: the server runs from bench/.dist, compiled from the working tree.
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json", "--outDir", "bench/.dist", "--declaration", "false", "--sourceMap", "false"], { cwd: root, stdio: "inherit" });

const sc = SCENARIOS.find((s) => s.name === "fanout-1k-r20");
const rows = [];
for (let r = 0; r < Number(values.repeat); r++) {
  for (const target of ["cometbus ws", "cometbus sse"]) {
    // Each pair in the other order every repeat: the first cell of a pair does not always go first.
    for (const metrics of r % 2 ? ["1", "0"] : ["0", "1"]) {
      process.env.COMETBUS_METRICS = metrics;
      const cell = await sc.run(target, { quick: values.quick, workers: 1 });
      if (cell.error || cell.lost || cell.duplicates) throw new Error(`${target} metrics=${metrics}: ${cell.error ?? `lost ${cell.lost} dup ${cell.duplicates}`}`);
      rows.push({ target, metrics: metrics === "1", us: cell.cpuUsPerDelivery, p99: cell.p99, load: Math.round(os.loadavg()[0] * 100) / 100 });
      console.log(`${target} metrics ${metrics === "1" ? "on " : "off"}: ${cell.cpuUsPerDelivery} µs/delivery, p99 ${cell.p99} ms, load ${rows.at(-1).load}`);
    }
  }
}
for (const target of ["cometbus ws", "cometbus sse"]) {
  const mean = (on) => {
    const xs = rows.filter((x) => x.target === target && x.metrics === on).map((x) => x.us);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  console.log(`${target}: metrics on / off = ${(mean(true) / mean(false)).toFixed(3)} (${mean(true).toFixed(2)} / ${mean(false).toFixed(2)} µs per delivery)`);
}
