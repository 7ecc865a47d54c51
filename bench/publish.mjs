#!/usr/bin/env node
/**
 * Publishing per backend: publishes/s and publish→receive latency (p50, p99), from 1 process and
 * from 3 processes sharing the store (memory: 1 only, it cannot be shared). Every process runs a
 * MessageBus, publishes in-process and has a server-side subscriber on every channel, so a
 * latency sample is "publish called in process A" → "callback ran in process B" (all pairs).
 *
 * Two phases per setup:
 *   saturated — every process publishes as fast as it can (`--concurrency` in flight): publishes/s,
 *               and latency under that load (queueing included);
 *   paced     — every process publishes one message every `--interval` ms: latency of a quiet bus.
 *
 *   node bench/publish.mjs [--quick] [--backends memory,redis,postgres,redis-cluster] [--json FILE]
 *                          [--cluster redis+cluster://host:port,… --shards N]
 * Needs `npm run build`, Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (db test);
 * `redis-cluster` needs `--cluster`, the URL of a running Redis Cluster (README, "Redis Cluster").
 */
import { fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const SELF = fileURLToPath(import.meta.url);
const DIST = new URL("../dist/server/index.js", import.meta.url).href;
const now = () => performance.timeOrigin + performance.now();

if (process.argv[2] === "--worker") await worker();
else await main();

// ---- a worker: one process with a bus --------------------------------------------------------

async function worker() {
  const { MessageBus } = await import(DIST);
  const send = (m) => process.send(m);
  let bus;
  let latencies = [];
  let received = 0;
  let expected = Infinity;
  let waitingAll;
  const gotAll = () => {
    if (received >= expected && waitingAll) {
      waitingAll();
      waitingAll = undefined;
    }
  };
  process.on("message", async (cmd) => {
    try {
      if (cmd.type === "init") {
        bus = new MessageBus({ backend: cmd.backend, onError: () => {} });
        await bus.ready();
        for (const ch of cmd.channels) {
          bus.subscribe(ch, (m) => {
            latencies.push(now() - m.data.t);
            received++;
            gotAll();
          });
        }
        // The subscriptions are live once their (empty) catch-up has been read.
        await new Promise((r) => setTimeout(r, 300));
        send({ type: "ready" });
      } else if (cmd.type === "run") {
        latencies = [];
        received = 0;
        expected = cmd.expected;
        const all = new Promise((r) => (waitingAll = r));
        gotAll();
        const started = now();
        let next = 0;
        let failed = 0;
        const one = async () => {
          const i = next++;
          try {
            await bus.publish(cmd.channels[i % cmd.channels.length], { t: now(), i, pad: cmd.pad });
          } catch {
            failed++;
          }
        };
        if (cmd.interval) {
          const inflight = [];
          while (next < cmd.count) {
            inflight.push(one());
            await new Promise((r) => setTimeout(r, cmd.interval));
          }
          await Promise.all(inflight);
        } else {
          await Promise.all(
            Array.from({ length: cmd.concurrency }, async () => {
              while (next < cmd.count) await one();
            }),
          );
        }
        const published = now();
        await Promise.race([all, new Promise((r) => setTimeout(r, 30_000))]);
        send({ type: "done", started, published, failed, received, latencies });
      } else if (cmd.type === "close") {
        await bus.close();
        send({ type: "closed" });
        process.exit(0);
      }
    } catch (e) {
      send({ type: "error", error: String(e?.stack ?? e) });
    }
  });
  send({ type: "up" });
}

// ---- the conductor ---------------------------------------------------------------------------

function spawnWorker() {
  const child = fork(SELF, ["--worker"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const queue = [];
  const waiters = [];
  child.on("message", (m) => {
    if (m.type === "error") console.error("worker error:", m.error);
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
  return { child, next, send: (m) => child.send(m) };
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The cluster URL with this run's prefix and shard count. */
function clusterUrl(opts, tag) {
  return `${opts.cluster.replace(/\/?(\?.*)?$/, "")}/?prefix=${tag}:&shards=${opts.shards}`;
}

async function setup(kind, processes, opts) {
  const tag = `bench_${process.pid}_${randomBytes(3).toString("hex")}`;
  const backend =
    kind === "memory"
      ? "memory"
      : kind === "redis"
        ? `redis://127.0.0.1:6379/0?prefix=${tag}:`
        : kind === "redis-cluster"
          ? clusterUrl(opts, tag)
          : `postgres://postgres@127.0.0.1:5432/test?schema=${tag}`;
  const workers = [];
  for (let i = 0; i < processes; i++) {
    const w = spawnWorker();
    await w.next(); // up
    // One after the other: the first creates the PostgreSQL schema.
    w.send({ type: "init", backend, channels: opts.channels });
    const r = await w.next();
    if (r.type !== "ready") throw new Error(`worker failed: ${r.error}`);
    workers.push(w);
  }
  return { backend, workers, tag };
}

async function phase(workers, cmd) {
  const expected = cmd.count * workers.length;
  for (const w of workers) w.send({ ...cmd, type: "run", expected });
  const results = await Promise.all(workers.map((w) => w.next()));
  const started = Math.min(...results.map((r) => r.started));
  const published = Math.max(...results.map((r) => r.published));
  const lat = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const failed = results.reduce((n, r) => n + r.failed, 0);
  const lost = results.reduce((n, r) => n + Math.max(0, expected - failed - r.received), 0);
  return {
    publishes: expected - failed,
    perSecond: Math.round((expected - failed) / ((published - started) / 1000)),
    p50: +percentile(lat, 50).toFixed(2),
    p99: +percentile(lat, 99).toFixed(2),
    samples: lat.length,
    failed,
    lost,
  };
}

async function cleanup(kind, tag, opts) {
  if (kind === "memory") return;
  const mod = await import(DIST);
  const b =
    kind === "redis"
      ? new mod.RedisBackend({ url: "redis://127.0.0.1:6379/0", prefix: `${tag}:` })
      : kind === "redis-cluster"
        ? new mod.RedisBackend({ url: clusterUrl(opts, tag) })
        : new mod.PostgresBackend({ url: "postgres://postgres@127.0.0.1:5432/test", schema: tag });
  await b.destroy().catch((e) => console.error(`cleanup ${tag}:`, e.message));
  await b.close();
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      backends: { type: "string", default: "memory,redis,postgres" },
      json: { type: "string" },
      concurrency: { type: "string", default: "16" },
      interval: { type: "string", default: "10" },
      cluster: { type: "string" },
      shards: { type: "string", default: "3" },
    },
  });
  const count = values.quick ? 1000 : 4000; // saturated, per process
  const pacedCount = values.quick ? 100 : 300; // paced, per process
  const opts = { channels: Array.from({ length: 10 }, (_, i) => `/bench/${i}`), cluster: values.cluster, shards: Number(values.shards) };
  if (values.backends.includes("redis-cluster") && !opts.cluster) throw new Error("--backends redis-cluster needs --cluster redis+cluster://host:port,…");
  const rows = [];
  for (const kind of values.backends.split(",")) {
    for (const processes of kind === "memory" ? [1] : [1, 3]) {
      const { workers, tag } = await setup(kind, processes, opts);
      try {
        // A short warm-up, so JIT and connection pools are not what is measured.
        await phase(workers, { count: 200, concurrency: Number(values.concurrency), channels: opts.channels, pad: "" });
        const saturated = await phase(workers, { count, concurrency: Number(values.concurrency), channels: opts.channels, pad: "x".repeat(100) });
        const paced = await phase(workers, { count: pacedCount, interval: Number(values.interval), channels: opts.channels, pad: "x".repeat(100) });
        rows.push({ backend: kind === "redis-cluster" ? `redis-cluster (${opts.shards} shards)` : kind, processes, saturated, paced });
        process.stdout.write(`${kind} x${processes}: ${JSON.stringify({ saturated, paced })}\n`);
      } finally {
        for (const w of workers) w.send({ type: "close" });
        await Promise.all(workers.map((w) => w.next().catch(() => {})));
        await cleanup(kind, tag, opts);
      }
    }
  }
  const memory = rows.find((r) => r.backend === "memory");
  const ratio = (x) => (memory ? ` (${(x / memory.saturated.perSecond).toFixed(2)}×)` : "");
  let md = `### Publishing per backend (bench/publish.mjs${values.quick ? " --quick" : ""}; ${cpus().length} cores, ${cpus()[0]?.model ?? "?"})\n\n`;
  md += "| backend | processes | publishes/s (saturated, ratio to memory) | latency p50 / p99 saturated (ms) | latency p50 / p99 paced (ms) | lost |\n";
  md += "|---|---|---|---|---|---|\n";
  for (const r of rows) {
    md += `| ${r.backend} | ${r.processes} | ${r.saturated.perSecond}${ratio(r.saturated.perSecond)} | ${r.saturated.p50} / ${r.saturated.p99} | ${r.paced.p50} / ${r.paced.p99} | ${r.saturated.lost + r.paced.lost} |\n`;
  }
  md += `\nSaturated: ${count} publishes per process, ${values.concurrency} in flight per process; paced: ${pacedCount} per process, one every ${values.interval} ms. Latency: publish call → server-side subscriber callback, every process receiving every message.\n`;
  process.stdout.write("\n" + md);
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2) + "\n");
}
