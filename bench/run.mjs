#!/usr/bin/env node
// `npm run bench`: every scenario against cometbus and the baselines, in one run.
//   --quick            shorter and smaller, for iterating
//   --only a,b         scenarios by name (fanout-1k-r20, fanout-1k, fanout-max, idle-10k, poll-rps, publish)
//   --targets x,y      targets whose name contains one of these ("cometbus", "ws", "nchan sse");
//                      "=name" only that target ("=cometbus ws", not "cometbus ws · bun")
//   --workers N        generator processes (default 1)
//   --repeat N         run every cell N times (default 1), interleaved: A, B, A, B (drift favours none)
//   --profile          servers run under node --cpu-prof; profiles land in bench/results/profiles/
//                      (read one with `node bench/lib/profile-top.mjs FILE`)
//   --runtimes         the runtime dimension alone: WebSocket and SSE, cometbus and bare, on Node, Bun
//                      and Deno (and nchan), at 1k × 20 and 1k × 100 msg/s and idle; writes
//                      bench/results/runtimes-latest.md
//   --seconds N        fan-out cells publish for N s (default: the scenario's own)
//   --connections N    idle cells hold N connections
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { SCENARIOS } from "./scenarios/index.mjs";
import { goals } from "./lib/goals.mjs";
import { markdown } from "./lib/table.mjs";
import { runtimeTable } from "./lib/runtime-table.mjs";
import { killAll } from "./lib/server.mjs";

// The publisher runs here: same priority as the servers and generator (see lib/server.mjs). With
// autogroup scheduling, niceness only counts inside a session; the session's own weight is raised too
// (root only), so other sessions' work on a shared machine disturbs the figures less.
const NICE = Number(process.env.BENCH_NICE ?? -10);
try {
  os.setPriority(NICE);
} catch {}
try {
  if (NICE !== 0) writeFileSync("/proc/self/autogroup", String(NICE));
} catch {}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    targets: { type: "string" },
    workers: { type: "string", default: "1" },
    repeat: { type: "string", default: "1" },
    profile: { type: "boolean", default: false },
    runtimes: { type: "boolean", default: false },
    seconds: { type: "string" },
    connections: { type: "string" },
  },
});
const root = new URL("..", import.meta.url).pathname;

// The server under test is compiled from the working tree into bench/.dist, so a concurrent
// `npm run build` (which empties dist/) cannot pull it away mid-run.
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json", "--outDir", "bench/.dist", "--declaration", "false", "--sourceMap", "false"], {
  cwd: root,
  stdio: "inherit",
});

if (values.profile) {
  process.env.BENCH_PROFILE_DIR = new URL("./results/profiles/", import.meta.url).pathname;
  mkdirSync(process.env.BENCH_PROFILE_DIR, { recursive: true });
}

const RUNTIME_SCENARIOS = ["fanout-1k-r20", "fanout-1k", "idle-10k"];
const RUNTIME_TARGETS = ["cometbus ws", "cometbus sse", "bare ws", "bare sse", "nchan ws", "nchan sse"];
const only = values.only?.split(",") ?? (values.runtimes ? RUNTIME_SCENARIOS : undefined);
const filters = values.targets?.split(",") ?? (values.runtimes ? RUNTIME_TARGETS : undefined);
const count = (v) => (v === undefined ? undefined : Number(v));
const opts = { quick: values.quick, workers: Number(values.workers), seconds: count(values.seconds), connections: count(values.connections) };
const results = {
  date: new Date().toISOString(),
  quick: values.quick,
  loadAverageAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version, kernel: os.release() },
  scenarios: {},
};
const started = Date.now();
for (const sc of SCENARIOS) {
  if (only && !only.includes(sc.name)) continue;
  const rows = (results.scenarios[sc.name] = { describe: sc.describe(opts), cells: [] });
  const targets = sc.targets(opts).filter((t) => !filters || filters.some((f) => (f.startsWith("=") ? t === f.slice(1) : t.includes(f))));
  const repeat = Number(values.repeat);
  // Round by round, every target once a round: a machine that slows down (other work, heat) costs
  // every target alike instead of the ones that happen to run last.
  for (let r = 0; r < repeat; r++) {
    for (const targetName of targets) {
      process.stdout.write(`${sc.name} · ${targetName}${repeat > 1 ? ` #${r + 1}` : ""} … `);
      let cell;
      try {
        cell = await sc.run(targetName, opts);
      } catch (e) {
        cell = { error: String(e?.stack ?? e) };
      }
      rows.cells.push({ target: targetName, round: r + 1, ...cell, load1: Math.round(os.loadavg()[0] * 100) / 100 });
      process.stdout.write(sc.summary(cell) + "\n");
    }
  }
}

// publish.mjs measures publishing per backend (publishes/s, latency); run it if it is there.
let publishMd = "";
if (!values.runtimes && (!only || only.includes("publish")) && existsSync(new URL("./publish.mjs", import.meta.url))) {
  process.stdout.write("publish · bench/publish.mjs …\n");
  const json = new URL(`./results/publish-latest${values.quick ? "-quick" : ""}.json`, import.meta.url).pathname;
  const r = spawnSync(process.execPath, [new URL("./publish.mjs", import.meta.url).pathname, ...(values.quick ? ["--quick"] : []), "--json", json], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  });
  // Its progress lines come first; the Markdown starts at its heading.
  publishMd = r.stdout ?? "";
  if (publishMd.includes("###")) publishMd = publishMd.slice(publishMd.indexOf("###"));
  process.stdout.write(publishMd);
  results.publish = { exitCode: r.status, json: existsSync(json) ? JSON.parse(readFileSync(json, "utf8")) : null };
}

results.minutes = Math.round((Date.now() - started) / 600) / 100;
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
const stamp = results.date.replace(/[:.]/g, "-");
if (values.runtimes) {
  const table = `### Runtimes\n\n${runtimeTable(results)}`;
  const file = new URL(`./results/runtimes-latest${values.quick ? "-quick" : ""}`, import.meta.url).pathname;
  writeFileSync(`${file}.json`, JSON.stringify(results, null, 2) + "\n");
  writeFileSync(`${file}.md`, `${table}\n${markdown(results)}`);
  process.stdout.write(`\n${table}\n(${results.minutes} min; ${file}.md)\n`);
  process.exit(0);
}
const load = results.loadAverageAtStart.join(", ");
const md = markdown(results) + `\nLoad average at the start: ${load}.\n\n### Goals\n\n` + goals(results) + (publishMd ? "\n" + publishMd : "");
// latest.* is the last full run; quick and partial runs (--only, --targets) keep their own.
const suffix = values.quick ? "-quick" : only || filters ? "-partial" : "";
writeFileSync(new URL(`./results/${stamp}${suffix}.json`, import.meta.url), JSON.stringify(results, null, 2) + "\n");
writeFileSync(new URL(`./results/latest${suffix}.json`, import.meta.url), JSON.stringify(results, null, 2) + "\n");
writeFileSync(new URL(`./results/latest${suffix}.md`, import.meta.url), md);
process.stdout.write("\n" + md + `\n(${results.minutes} min; bench/results/latest${suffix}.json)\n`);
