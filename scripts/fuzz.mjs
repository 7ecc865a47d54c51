#!/usr/bin/env node
/**
 * Long property-based fuzz run of the test/fuzz-*.test.ts suites (fast-check).
 *
 *   node scripts/fuzz.mjs                      random seed, 500 runs per property
 *   node scripts/fuzz.mjs --seed 42 --runs 2000
 *   node scripts/fuzz.mjs --time-limit 60000   ms per property, runs and shrinking (default 120000; 0 = none)
 *   node scripts/fuzz.mjs -- -t "truncated"    anything after -- goes to vitest
 *
 * Sets FUZZ_SEED, FUZZ_RUNS, FUZZ_TIME_LIMIT and FUZZ_REPORT for the suites, runs
 * `npx vitest run test/fuzz-*.test.ts`, then prints the seed and every property's run count, so that
 * a failure can be replayed with the same seed.
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function usage(message) {
  if (message) console.error(`fuzz: ${message}`);
  console.error("usage: node scripts/fuzz.mjs [--seed N] [--runs N] [--time-limit MS] [-- vitest args…]");
  process.exit(2);
}

const args = process.argv.slice(2);
const options = { seed: undefined, runs: 500, timeLimit: 120_000 };
const passThrough = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--") {
    passThrough.push(...args.slice(i + 1));
    break;
  }
  const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
  const value = () => {
    const v = inline ?? args[++i];
    if (v === undefined || !/^-?\d+$/.test(v)) usage(`${flag} takes an integer`);
    return Number(v);
  };
  if (flag === "--seed") options.seed = value();
  else if (flag === "--runs") options.runs = value();
  else if (flag === "--time-limit") options.timeLimit = value();
  else if (flag === "-h" || flag === "--help") usage();
  else usage(`unknown argument ${a}`);
}
if (options.runs < 1) usage("--runs must be at least 1");
const seed = options.seed ?? randomInt(0, 2 ** 31 - 1);

const files = readdirSync(join(root, "test"))
  .filter((f) => /^fuzz-.*\.test\.ts$/.test(f))
  .sort()
  .map((f) => `test/${f}`);
if (!files.length) usage("no test/fuzz-*.test.ts files");

const dir = mkdtempSync(join(tmpdir(), "cometbus-fuzz-"));
const report = join(dir, "report.jsonl");
const env = {
  ...process.env,
  FUZZ_SEED: String(seed),
  FUZZ_RUNS: String(options.runs),
  FUZZ_TIME_LIMIT: String(options.timeLimit),
  FUZZ_REPORT: report,
};

console.log(`fuzz: seed ${seed}, ${options.runs} runs per property, time limit ${options.timeLimit ? `${options.timeLimit} ms` : "none"} per property`);
console.log(`fuzz: npx vitest run ${files.join(" ")}${passThrough.length ? " " + passThrough.join(" ") : ""}\n`);

const started = Date.now();
// No per-test timeout: a property of thousands of runs takes as long as it takes (each run has its own).
const child = spawn(process.platform === "win32" ? "npx.cmd" : "npx", ["vitest", "run", ...files, "--testTimeout=0", ...passThrough], {
  cwd: root,
  env,
  stdio: "inherit",
});
const forward = (signal) => child.kill(signal);
process.on("SIGINT", forward);
process.on("SIGTERM", forward);

child.on("exit", (code, signal) => {
  process.off("SIGINT", forward);
  process.off("SIGTERM", forward);
  let rows = [];
  try {
    rows = readFileSync(report, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    // no property ran (the suites did not load)
  }
  rmSync(dir, { recursive: true, force: true });

  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`\nfuzz: seed ${seed} — ${rows.length} properties in ${minutes} min`);
  const width = Math.max(0, ...rows.map((r) => r.runs.toString().length + 1 + r.requested.toString().length));
  for (const r of rows.sort((a, b) => a.file.localeCompare(b.file))) {
    const runs = `${r.runs}/${r.requested}`.padStart(width);
    const outcome = r.failed ? `FAILED after ${r.shrinks} shrinks` : r.interrupted ? "passed, interrupted by the time limit" : "passed";
    console.log(`  ${runs} runs  ${outcome.padEnd(36)} ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.file} › ${r.name}`);
  }
  const failed = rows.filter((r) => r.failed);
  if (failed.length) {
    console.log(`\nfuzz: ${failed.length} failed; replay one with:`);
    for (const r of failed) console.log(`  FUZZ_SEED=${seed} FUZZ_RUNS=${r.requested} npx vitest run ${r.file} -t ${JSON.stringify(r.name)}`);
  }
  console.log(`\nfuzz: seed ${seed}`);
  process.exit(signal ? 1 : (code ?? 1));
});
