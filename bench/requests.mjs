#!/usr/bin/env node
/**
 * Requests with replies (docs/protocol.md#12-requests): round trips per second and their latency
 * (p50, p99) for one client and for many, each client in a closed loop (the next request once the
 * last is answered), and the server's CPU per request; against socket.io's `emitWithAck` in the same
 * run, same machine, same clients. Targets:
 *   cometbus ws    the real client on a WebSocket (`transports: ["websocket"]`, subscribed to one channel)
 *   cometbus http  the real client with no subscription: every request a POST {base}/{clientId}/request
 *   socket.io ws   socket.io-client, `emitWithAck("echo", data)` answered by `ack(data)`
 * Cells run twice, interleaved (every target, then again in reverse), each on a fresh server.
 *
 *   node bench/requests.mjs [--seconds 5] [--clients 1,100] [--workers 2] [--json FILE]
 * Needs `npm run build` (the client and server from dist/).
 */
import { fork } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Histogram } from "./lib/histogram.mjs";
import { cpuSeconds } from "./lib/proc.mjs";
import { startServer } from "./lib/server.mjs";

const SELF = fileURLToPath(import.meta.url);
const DIST = new URL("../dist/", import.meta.url).href;
const TARGETS = ["cometbus ws", "cometbus http", "socket.io ws"];
const PAYLOAD = { text: "hello from the bench", n: 0 };

if (process.argv[2] === "--worker") await worker();
else await main();

// ---- a load worker: its share of the clients, each in a closed loop -----------------------------

async function worker() {
  const { target, port, clients, warmMs, seconds } = JSON.parse(process.argv[3]);
  const open = await connect(target, port, clients);
  const hist = new Histogram();
  let done = 0;
  let measuring = false;
  let stop = false;
  const loop = async (ask) => {
    for (let n = 0; !stop; n++) {
      const t = performance.now();
      await ask({ ...PAYLOAD, n });
      if (measuring && !stop) {
        hist.add((performance.now() - t) * 1000);
        done++;
      }
    }
  };
  const loops = open.askers.map(loop);
  await new Promise((r) => setTimeout(r, warmMs));
  process.send({ type: "measuring" });
  measuring = true;
  const cpu0 = process.cpuUsage();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const cpu = process.cpuUsage(cpu0);
  stop = true;
  await Promise.allSettled(loops);
  await open.close();
  // Exit only once the message is out: an exit right after send() can lose it.
  process.send({ type: "done", done, counts: hist.counts, n: hist.n, max: hist.max, cpuS: (cpu.user + cpu.system) / 1e6 }, () => process.exit(0));
}

async function connect(target, port, clients) {
  if (target === "socket.io ws") {
    const { io } = await import("socket.io-client");
    const sockets = await Promise.all(
      Array.from({ length: clients }, () => new Promise((resolve, reject) => {
        const s = io(`http://127.0.0.1:${port}`, { transports: ["websocket"], forceNew: true });
        s.once("connect", () => resolve(s));
        s.once("connect_error", reject);
      })),
    );
    return { askers: sockets.map((s) => (d) => s.emitWithAck("echo", d)), close: async () => sockets.forEach((s) => s.close()) };
  }
  const { MessageBus } = await import(new URL("client/bus.js", DIST).href);
  const buses = Array.from({ length: clients }, () => new MessageBus({ baseUrl: `http://127.0.0.1:${port}/`, path: "mb", transports: ["websocket"] }));
  if (target === "cometbus ws") {
    for (const b of buses) b.subscribe("/bench/idle", () => {}, -1);
    const deadline = Date.now() + 20_000;
    while (buses.some((b) => b.transport !== "websocket")) {
      if (Date.now() > deadline) throw new Error("cometbus clients did not reach their WebSocket");
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return { askers: buses.map((b) => (d) => b.request("echo", d)), close: async () => buses.forEach((b) => b.stop()) };
}

// ---- the runner ---------------------------------------------------------------------------------

async function cell(target, clients, opts) {
  const server = await startServer(target === "socket.io ws" ? "socketio" : "cometbus", { COMETBUS_DIST: DIST, COMETBUS_REQUESTS: "1" });
  try {
    const workers = Math.min(opts.workers, clients);
    const shares = Array.from({ length: workers }, (_, i) => Math.floor(clients / workers) + (i < clients % workers ? 1 : 0));
    const children = shares.map((n) => fork(SELF, ["--worker", JSON.stringify({ target, port: server.port, clients: n, warmMs: 1000, seconds: opts.seconds })], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
    const measuring = children.map((c) => new Promise((r) => c.on("message", (m) => m.type === "measuring" && r())));
    const results = children.map((c) => new Promise((r, j) => {
      c.on("message", (m) => m.type === "done" && r(m));
      c.once("exit", (code) => code && j(new Error(`${target} worker exited ${code}`)));
    }));
    await Promise.all(measuring);
    const cpu0 = cpuSeconds(server.pids());
    const t0 = performance.now();
    const got = await Promise.all(results);
    const elapsed = (performance.now() - t0) / 1000;
    const serverCpu = cpuSeconds(server.pids()) - cpu0;
    const hist = new Histogram();
    let done = 0;
    let genCpu = 0;
    for (const g of got) {
      const h = new Histogram(g.counts);
      h.n = g.n;
      h.max = g.max;
      hist.merge(h);
      done += g.done;
      genCpu = Math.max(genCpu, g.cpuS / opts.seconds);
    }
    return {
      target,
      clients,
      perSecond: done / opts.seconds,
      p50Ms: hist.quantile(0.5),
      p99Ms: hist.quantile(0.99),
      serverCpuUsPerRequest: done ? (serverCpu * 1e6) / done : null,
      serverCorePct: (100 * serverCpu) / elapsed,
      busiestWorkerCorePct: Math.round(100 * genCpu),
    };
  } finally {
    await server.stop();
  }
}

async function main() {
  const { values } = parseArgs({
    options: { seconds: { type: "string", default: "5" }, clients: { type: "string", default: "1,100" }, workers: { type: "string", default: "2" }, json: { type: "string" } },
  });
  const opts = { seconds: Number(values.seconds), workers: Number(values.workers) };
  const sizes = values.clients.split(",").map(Number);
  const load = loadavg()[0];
  const runs = [];
  for (const clients of sizes) {
    for (const order of [TARGETS, [...TARGETS].reverse()]) {
      for (const target of order) {
        const r = await cell(target, clients, opts);
        runs.push(r);
        console.error(`${target}, ${clients} client(s): ${Math.round(r.perSecond)}/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, server ${r.serverCpuUsPerRequest?.toFixed(1)} µs/request`);
      }
    }
  }
  const rows = [];
  for (const clients of sizes) {
    const of = (t) => runs.filter((r) => r.target === t && r.clients === clients);
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const base = mean(of("socket.io ws").map((r) => r.perSecond));
    const baseCpu = mean(of("socket.io ws").map((r) => r.serverCpuUsPerRequest));
    for (const t of TARGETS) {
      const rs = of(t);
      const ps = mean(rs.map((r) => r.perSecond));
      const cpu = mean(rs.map((r) => r.serverCpuUsPerRequest));
      rows.push(
        `| ${t} | ${clients} | ${rs.map((r) => Math.round(r.perSecond)).join(" · ")} | ${(ps / base).toFixed(2)}× | ${rs.map((r) => `${r.p50Ms} / ${r.p99Ms}`).join(" · ")} | ${rs.map((r) => r.serverCpuUsPerRequest.toFixed(1)).join(" · ")} | ${(cpu / baseCpu).toFixed(2)}× | ${rs.map((r) => r.busiestWorkerCorePct).join(" · ")} |`,
      );
    }
  }
  const md = [
    `Requests with replies, closed loop, ${opts.seconds} s per cell after 1 s warm-up, ${opts.workers} load workers, load average ${load.toFixed(2)} at the start (${new Date().toISOString().slice(0, 10)}).`,
    "",
    "| target | clients | round trips/s (run 1 · run 2) | vs socket.io | p50 / p99 ms | server µs per request | vs socket.io | busiest load worker, % of a core |",
    "|---|---:|---|---:|---|---|---:|---|",
    ...rows,
  ].join("\n");
  console.log(md);
  if (values.json) writeFileSync(values.json, JSON.stringify({ load, opts, runs, markdown: md }, null, 2));
}
