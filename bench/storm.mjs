#!/usr/bin/env node
// The deploy storm, measured as an operator would see it: two `cometbus serve` processes (A and B)
// on one Redis behind a TCP load balancer (bench/lib/tcp-forwarder.mjs), N real cometbus clients
// connected through it to A, a steady publisher on B. Then the load balancer switches new
// connections to B and A is sent SIGTERM (a rolling deploy, `--cut term`) or SIGKILL (a crash,
// `--cut kill`). T0 is that moment. It measures; it asserts nothing (test/deploy-storm.test.ts does).
//
//   node bench/storm.mjs [--root DIR] --clients N --cut term|kill [--window MS] [--rate R]
//                        [--seconds S] [--out FILE.json] [--svg FILE.svg] [--label NAME]
//
// --root     the checkout whose dist/ runs (server: dist/server/cli.js, client: dist/client/index.js);
//            default this repository. It must be built.
// --clients  N clients of the real client (`new MessageBus({ baseUrl })`, default negotiation), each on
//            3 channels drawn from a pool of 30, at lastId 0, in 2 forked worker processes (N/2 each)
// --cut      term (SIGTERM A: a deploy) or kill (SIGKILL A: a crash)
// --window   the drain window in ms the servers are asked for: passed as `--drain-window MS` when the
//            CLI's usage lists that flag, and always as $COMETBUS_DRAIN_WINDOW_MS. Recorded in the
//            JSON; the drained run's contract is peak arrivals per 100 ms at B ≤ 2 × N × 100 / window.
// --rate     messages/s in total published through B's POST /message-bus/publish (default 30), round
//            robin over the 30 channels, each carrying { s: sequence, t: publish time }
// --seconds  how long after T0 to wait for every client to recover (default 60)
// --out      the JSON of every figure; --svg a chart of arrivals at B per 100 ms (bench/lib/storm-chart.mjs)
// --label    the run's name in tables and charts (default: the root's directory name)
// --cold     every client starts cold (as on a first visit: long-poll, then probing up), 50 per 100 ms;
//            by default one client per worker goes first and the others start where it settled, as
//            returning visitors do (the client remembers per origin what worked)
// --seed     the clients' channel draw (default random; recorded in the JSON); --quiet: no progress log
// --redis    Redis URL (default $COMETBUS_TEST_REDIS or redis://127.0.0.1:6379/0); a prefix of its own
//            is used and deleted afterwards
//
// Steady state first: every client has received something and been on one transport for 3 s. Then
// the cut, and these figures (all times from T0, one monotonic clock shared by every process):
//   recovery     per client, until the first message published after T0 arrives: p50/p90/p99/max
//                (clients not recovered count as never), and the share recovered within --seconds
//   arrivals     connections accepted by the load balancer for B, per 100 ms: peak and whole series,
//                also by what each connection's first request asked for (websocket, sse, long-poll, poll)
//   B            CPU % per 100 ms (/proc/PID/stat; 100 % = one core) and RSS (sampled, and VmHWM)
//   transports   at T0 and at the end, clients that fell to a lower transport on the way, the
//                transports they went through, and how long each phase took (onTransport)
//   delivery     at the end, per client and channel: lost (ids missing up to the channel's last id,
//                from the publisher's acknowledgements, checked against a final poll of B),
//                duplicated, out of order
// The run watches until every client has recovered and is back on its T0 transport (or a better
// one), and A has exited, or --seconds.
// It stops everything it started (workers, A, B, the forwarder, the Redis keys) on success, failure,
// SIGINT and SIGTERM.
import { fork, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { chartSvg } from "./lib/storm-chart.mjs";
import { markdownTable } from "./lib/storm-table.mjs";
import { nowMs } from "./lib/tcp-forwarder.mjs";
import { prng } from "./lib/prng.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    root: { type: "string", default: resolve(HERE, "..") },
    clients: { type: "string", default: "1000" },
    cut: { type: "string", default: "term" },
    window: { type: "string" },
    rate: { type: "string", default: "30" },
    seconds: { type: "string", default: "60" },
    out: { type: "string" },
    svg: { type: "string" },
    label: { type: "string" },
    redis: { type: "string", default: process.env.COMETBUS_TEST_REDIS ?? "redis://127.0.0.1:6379/0" },
    seed: { type: "string" },
    cold: { type: "boolean", default: false },
    quiet: { type: "boolean", default: false },
  },
});

const ROOT = resolve(args.root);
const N = Number(args.clients);
const CUT = args.cut;
const WINDOW = args.window === undefined ? null : Number(args.window);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const LABEL = args.label ?? basename(ROOT);
const SEED = args.seed === undefined ? randomBytes(4).readUInt32LE() : Number(args.seed);
const CHANNELS = Array.from({ length: 30 }, (_, i) => `/storm/${i}`);
const PER_CLIENT = 3;
const WORKERS = 2;
const TOKEN = "storm-" + randomBytes(6).toString("hex");
const PREFIX = `cometbus-storm:${process.pid}:${randomBytes(4).toString("hex")}:`;
const BIN_MS = 100;
const CLI = resolve(ROOT, "dist/server/cli.js");
const CLIENT = resolve(ROOT, "dist/client/index.js");

if (!Number.isInteger(N) || N < WORKERS) fail(`--clients must be an integer ≥ ${WORKERS}`);
if (CUT !== "term" && CUT !== "kill") fail("--cut must be term or kill");
if (WINDOW !== null && !(WINDOW > 0)) fail("--window must be a positive number of ms");
if (!(RATE > 0)) fail("--rate must be positive");
if (!existsSync(CLI) || !existsSync(CLIENT)) fail(`${ROOT} is not built: ${CLI} or ${CLIENT} is missing (npm run build there)`);

function fail(msg) {
  process.stderr.write(`storm: ${msg}\n`);
  process.exit(2);
}

const log = (...a) => {
  if (!args.quiet) process.stderr.write(`[storm ${new Date().toISOString().slice(11, 23)}] ${a.join(" ")}\n`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (v, d = 1) => (v === null || v === undefined || !Number.isFinite(v) ? v ?? null : Math.round(v * 10 ** d) / 10 ** d);

// ---- everything this run started, stopped however it ends ------------------------------------------

const children = new Set();
let redis;
let cleaned = false;

function own(child, name) {
  const c = { child, name, exit: null };
  c.exited = new Promise((r) =>
    child.once("exit", (code, signal) => {
      c.exit = { code, signal, at: nowMs() };
      children.delete(c);
      r(c.exit);
    }),
  );
  children.add(c);
  return c;
}

function killChildren() {
  for (const c of children) {
    try {
      c.child.kill("SIGKILL");
    } catch {}
  }
}

async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  const waits = [...children].map((c) => c.exited);
  killChildren();
  await Promise.race([Promise.all(waits), sleep(3000)]);
  if (redis) {
    try {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", PREFIX + "*", "COUNT", 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== "0");
    } catch (e) {
      process.stderr.write(`storm: could not delete the Redis keys under ${PREFIX}: ${e.message}\n`);
    }
    redis.disconnect();
  }
}

process.on("exit", killChildren);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    log(`${sig}: stopping everything`);
    cleanup().finally(() => process.exit(130));
  });
}

// ---- processes ---------------------------------------------------------------------------------------

let usage;
/** Whether the CLI's usage (`cli.js --help`) lists a flag. */
function cliHasFlag(flag) {
  usage ??= spawnSync(process.execPath, [CLI, "--help"], { encoding: "utf8", timeout: 10_000 }).stdout ?? "";
  return usage.includes(flag);
}

/** Starts `cometbus serve` on the shared Redis; resolves once it printed where it listens. */
async function startServer(name) {
  const backend = `${args.redis}?prefix=${encodeURIComponent(PREFIX)}`;
  const argv = [CLI, "serve", "--port", "0", "--backend", backend, "--publish-token", TOKEN];
  if (WINDOW !== null && cliHasFlag("--drain-window")) argv.push("--drain-window", String(WINDOW));
  const env = { ...process.env };
  if (WINDOW !== null) env.COMETBUS_DRAIN_WINDOW_MS = String(WINDOW);
  const child = spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"], env });
  const c = own(child, name);
  c.stderr = "";
  child.stderr.on("data", (d) => {
    if (c.stderr.length < 20_000) c.stderr += d;
  });
  c.port = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    child.once("exit", (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before listening: ${c.stderr.trim()}`)));
    setTimeout(() => reject(new Error(`${name} did not listen within 15 s`)), 15_000).unref();
  });
  c.pid = child.pid;
  return c;
}

/** Forks a helper with IPC; `on(type, fn)` for its messages, `ask(msg, type)` for one answer. */
function forkHelper(file, argv, name) {
  const child = fork(resolve(HERE, file), argv, { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
  const c = own(child, name);
  c.pid = child.pid;
  c.send = (m) => child.connected && child.send(m);
  c.ask = (m, type, ms = 60_000) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name}: no ${type} within ${ms} ms`)), ms);
      const on = (r) => {
        if (r.type !== type) return;
        clearTimeout(t);
        child.off("message", on);
        resolve(r);
      };
      child.on("message", on);
      if (m) c.send(m);
    });
  return c;
}

// ---- /proc ---------------------------------------------------------------------------------------

const TICK_MS = 10; // CLK_TCK = 100 on Linux

function cpuTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

function statusKb(pid, key) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The machine's busy and total jiffies, all cores (/proc/stat). */
function machineTicks() {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/**
 * Samples every 100 ms: B's CPU % of one core over the interval and RSS MB, the other processes'
 * CPU % (`others`: name → pid), and the whole machine's busy % (100 % = every core busy).
 */
function sampler(pid, others = {}) {
  const samples = [];
  const names = Object.keys(others);
  let last = { at: nowMs(), ticks: cpuTicks(pid), others: names.map((n) => cpuTicks(others[n])), machine: machineTicks() };
  const timer = setInterval(() => {
    const now = { at: nowMs(), ticks: cpuTicks(pid), others: names.map((n) => cpuTicks(others[n])), machine: machineTicks() };
    const kb = statusKb(pid, "VmRSS");
    const ms = now.at - last.at;
    const pct = (a, b) => (a === null || b === null ? null : ((a - b) * TICK_MS * 100) / ms);
    if (now.ticks !== null && last.ticks !== null)
      samples.push({
        at: now.at,
        cpu: pct(now.ticks, last.ticks),
        rssMB: kb === null ? null : kb / 1024,
        others: Object.fromEntries(names.map((n, i) => [n, pct(now.others[i], last.others[i])])),
        machine: now.machine && last.machine && now.machine.total > last.machine.total ? (100 * (now.machine.busy - last.machine.busy)) / (now.machine.total - last.machine.total) : null,
      });
    last = now;
  }, BIN_MS);
  return {
    samples,
    stop: () => clearInterval(timer),
  };
}

// ---- the publisher (through B, B survives every run) ------------------------------------------

function publisher(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const last = Object.fromEntries(CHANNELS.map((c) => [c, 0]));
  const st = { sent: 0, acked: 0, failed: 0, firstError: null, latencies: [] };
  const pending = new Set();
  let seq = 0;
  let stopped = false;
  const one = () => {
    const s = seq++;
    const channel = CHANNELS[s % CHANNELS.length];
    const t = nowMs();
    const body = JSON.stringify({ channel, data: { s, t } });
    const p = new Promise((resolve) => {
      const req = http.request(
        { host: "127.0.0.1", port, path: "/message-bus/publish", method: "POST", agent, headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}`, "Content-Length": Buffer.byteLength(body) } },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d) => (text += d));
          res.on("end", () => {
            if (res.statusCode === 200) {
              const id = JSON.parse(text).message_id;
              if (id > last[channel]) last[channel] = id;
              st.acked++;
              st.latencies.push(nowMs() - t);
            } else {
              st.failed++;
              st.firstError ??= `HTTP ${res.statusCode} ${text.slice(0, 200)}`;
            }
            resolve();
          });
        },
      );
      req.on("error", (e) => {
        st.failed++;
        st.firstError ??= e.message;
        resolve();
      });
      req.end(body);
    });
    st.sent++;
    pending.add(p);
    p.finally(() => pending.delete(p));
  };
  const t0 = nowMs();
  const loop = (async () => {
    while (!stopped) {
      const due = Math.floor(((nowMs() - t0) * RATE) / 1000) + 1;
      while (seq < due) one();
      await sleep(Math.max(2, Math.min(20, 500 / RATE)));
    }
  })();
  return {
    st,
    last,
    async stop() {
      stopped = true;
      await loop;
      await Promise.all(pending);
      agent.destroy();
    },
  };
}

async function getJson(port, path) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  if (!r.ok) throw new Error(`GET ${path}: HTTP ${r.status}`);
  return r.json();
}

/** Every channel's last id as B sees it: a poll asking -1 is answered with the channels' positions. */
async function finalPositions(port) {
  const body = Object.fromEntries(CHANNELS.map((c) => [c, -1]));
  const r = await fetch(`http://127.0.0.1:${port}/message-bus/storm-final-${process.pid}/poll?dlp=t`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`final poll: HTTP ${r.status}`);
  const batch = await r.json();
  const status = batch.find((m) => m.channel === "/__status");
  if (!status) return null;
  return Object.fromEntries(CHANNELS.map((c) => [c, status.data[c] ?? 0]));
}

// ---- figures -----------------------------------------------------------------------------------

/** The q-quantile (0..1) of values sorted ascending, nearest rank; Infinity stays (never recovered). */
function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
const finite = (v) => (Number.isFinite(v) ? round(v) : null);
const spread = (values) => {
  const s = values.slice().sort((a, b) => a - b);
  return { n: s.length, p50: finite(quantile(s, 0.5)), p90: finite(quantile(s, 0.9)), p99: finite(quantile(s, 0.99)), max: finite(s[s.length - 1] ?? null) };
};
const RANK = { websocket: 0, sse: 1, "long-poll": 2, poll: 3 };
const count = (list, key) => {
  const o = {};
  for (const x of list) {
    const k = key(x) ?? "none";
    o[k] = (o[k] ?? 0) + 1;
  }
  return o;
};

function recoveryFigures(clients) {
  // A client that recovered only after --seconds (while the final count waited) did not recover in time.
  const times = clients.map((c) => (c.recoveredMs === null || c.recoveredMs > SECONDS * 1000 ? Infinity : c.recoveredMs)).sort((a, b) => a - b);
  const recovered = times.filter(Number.isFinite).length;
  const at = (q) => {
    const v = quantile(times, q);
    return Number.isFinite(v) ? round(v) : null;
  };
  return {
    clients: clients.length,
    recovered,
    share: round(recovered / clients.length, 4),
    withinSeconds: SECONDS,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: at(1),
    on: count(clients.filter((c) => c.recoveredOn), (c) => c.recoveredOn),
  };
}

function transportFigures(clients) {
  const fell = [];
  const via = {};
  const firstChange = [];
  const back = [];
  const lowerFor = [];
  for (const c of clients) {
    const seen = new Set(c.events.map(([, n]) => n));
    for (const n of seen) via[n] = (via[n] ?? 0) + 1;
    if (c.events.length) firstChange.push(c.events[0][0]);
    const r0 = RANK[c.atT0] ?? 0;
    const lower = c.events.find(([, n]) => RANK[n] > r0);
    if (!lower) continue;
    fell.push(c);
    const up = c.events.find(([t, n]) => t > lower[0] && RANK[n] <= r0);
    if (up) {
      back.push(up[0]);
      lowerFor.push(up[0] - lower[0]);
    }
  }
  const paths = count(
    clients.filter((c) => c.events.length),
    (c) => [c.atT0, ...c.events.map(([, n]) => n)].join(" → "),
  );
  const topPaths = Object.fromEntries(Object.entries(paths).sort((a, b) => b[1] - a[1]).slice(0, 8));
  const reasons = {};
  for (const c of clients)
    for (const [, name, why, active] of c.failures ?? []) {
      const k = `${name}${active ? "" : " (probe)"}: ${why.replace(/\d{5,}/g, "N")}`;
      reasons[k] = (reasons[k] ?? 0) + 1;
    }
  return {
    atT0: count(clients, (c) => c.atT0),
    atEnd: count(clients, (c) => c.end),
    changed: clients.filter((c) => c.events.length).length,
    fellLower: fell.length,
    // the lowest transport each of them went down to
    fellTo: count(fell, (c) => c.events.reduce((w, [, n]) => (RANK[n] > RANK[w] ? n : w), c.atT0 ?? "websocket")),
    via,
    paths: topPaths,
    firstChangeMs: spread(firstChange),
    backOnT0TransportMs: spread(back),
    onLowerTransportMs: spread(lowerFor),
    neverBack: fell.length - back.length,
    // why transports gave up after T0 (negotiator diagnostics), most frequent first
    failures: Object.fromEntries(Object.entries(reasons).sort((x, y) => y[1] - x[1]).slice(0, 12)),
  };
}

function deliveryFigures(clients, last) {
  const bad = clients.filter((c) => c.lost || c.duplicated || c.outOfOrder);
  return {
    clients: clients.length,
    clientChannels: clients.length * PER_CLIENT,
    received: clients.reduce((a, c) => a + c.received, 0),
    lost: clients.reduce((a, c) => a + c.lost, 0),
    duplicated: clients.reduce((a, c) => a + c.duplicated, 0),
    outOfOrder: clients.reduce((a, c) => a + c.outOfOrder, 0),
    clientsWithProblems: bad.length,
    resets: clients.reduce((a, c) => a + (c.resets ?? 0), 0),
    examples: bad.slice(0, 10).map((c) => ({ id: c.id, bad: c.bad })),
    lastIds: last,
  };
}

function arrivalFigures(arrivals, t0, endAt, bPort) {
  const from = -1000;
  const bins = Math.ceil((endAt - t0 - from) / BIN_MS);
  const series = new Array(bins).fill(0);
  const byKind = {};
  let total = 0;
  let beforeT0 = 0;
  for (const a of arrivals) {
    if (a.target !== bPort) continue;
    const dt = a.at - t0;
    if (dt < 0) beforeT0++;
    const i = Math.floor((dt - from) / BIN_MS);
    if (i < 0 || i >= bins) continue;
    series[i]++;
    if (dt >= 0) {
      total++;
      const k = a.kind ?? "no request";
      byKind[k] ??= new Array(bins).fill(0);
      byKind[k][i]++;
    }
  }
  const first = (0 - from) / BIN_MS;
  let peak = 0;
  let peakAt = null;
  for (let i = first; i < bins; i++) if (series[i] > peak) [peak, peakAt] = [series[i], (i - first) * BIN_MS];
  // Connections that carried a request (undici opens an empty one after each aborted fetch).
  const withRequest = series.map((v, i) => v - (byKind["no request"]?.[i] ?? 0));
  const peakWithRequest = Math.max(0, ...withRequest.slice(first));
  const kinds = Object.fromEntries(Object.entries(byKind).map(([k, s]) => [k, { total: s.reduce((a, b) => a + b, 0), peak: Math.max(...s.slice(first)) }]));
  // Arrivals per second over the first 10 s: where the storm lands.
  const perSecond = [];
  for (let s = 0; s < Math.min(60, Math.ceil((endAt - t0) / 1000)); s++) perSecond.push(series.slice(first + s * 10, first + s * 10 + 10).reduce((a, b) => a + b, 0));
  return { binMs: BIN_MS, fromMs: from, peak, peakAtMs: peakAt, peakWithRequest, total, beforeT0, byKind: kinds, perSecond, series, seriesByKind: byKind };
}

/** The highest mean over any `n` consecutive values. */
function peakMean(values, n) {
  let best = null;
  for (let i = 0; i + n <= values.length; i++) {
    const w = values.slice(i, i + n);
    if (w.some((v) => v === null)) continue;
    const m = w.reduce((a, v) => a + v, 0) / n;
    if (best === null || m > best) best = m;
  }
  return best;
}

function cpuFigures(samples, t0, bPid) {
  const rel = samples.map((s) => ({ t: round(s.at - t0, 0), cpu: round(s.cpu, 0), rssMB: round(s.rssMB, 1) }));
  const after = rel.filter((s) => s.t >= 0);
  const before = rel.filter((s) => s.t < 0);
  let peak = { cpu: 0, t: null };
  for (const s of after) if (s.cpu > peak.cpu) peak = s;
  const hwm = statusKb(bPid, "VmHWM");
  return {
    peakPct: peak.cpu,
    peakAtMs: peak.t,
    // Over 1 s, the 100 ms samples' 10 ms resolution (10 %) evens out.
    peak1sPct: round(peakMean(after.map((s) => s.cpu), 10), 0),
    steadyPct: before.length ? round(before.reduce((a, s) => a + s.cpu, 0) / before.length, 0) : null,
    rssPeakMB: round(Math.max(0, ...after.map((s) => s.rssMB ?? 0)), 1),
    rssSteadyMB: before.length ? before[before.length - 1].rssMB : null,
    vmHwmMB: hwm === null ? null : round(hwm / 1024, 1),
    series: rel.map((s) => [s.t, s.cpu, s.rssMB]),
  };
}

/** The rest of the machine after T0: the harness's processes and every core, peak over 1 s. */
function machineFigures(samples, t0) {
  const after = samples.filter((s) => s.at >= t0);
  const names = Object.keys(after[0]?.others ?? {});
  return {
    cores: os.cpus().length,
    busyPeak1sPct: round(peakMean(after.map((s) => s.machine), 10), 0),
    busyMeanPct: round(after.reduce((a, s) => a + (s.machine ?? 0), 0) / Math.max(1, after.length), 0),
    peak1sPct: Object.fromEntries(names.map((n) => [n, round(peakMean(after.map((s) => s.others[n]), 10), 0)])),
    busySeries: samples.map((s) => [round(s.at - t0, 0), round(s.machine, 0)]),
  };
}

// ---- the run ------------------------------------------------------------------------------------

function clientSpecs() {
  const rnd = prng(SEED);
  return Array.from({ length: N }, (_, id) => {
    const pool = CHANNELS.slice();
    const channels = [];
    for (let k = 0; k < PER_CLIENT; k++) channels.push(pool.splice(Math.floor(rnd() * pool.length), 1)[0]);
    return { id, channels };
  });
}

async function run() {
  const startedAt = new Date().toISOString();
  const load0 = os.loadavg();
  log(`root ${ROOT}, ${N} clients, cut ${CUT}, window ${WINDOW ?? "–"}, ${RATE} msg/s, seed ${SEED}, load ${load0.map((l) => l.toFixed(2)).join(" ")}`);

  redis = new Redis(args.redis, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  await redis.connect();

  const [A, B] = await Promise.all([startServer("A"), startServer("B")]);
  log(`A pid ${A.pid} port ${A.port}, B pid ${B.pid} port ${B.port}, Redis prefix ${PREFIX}`);

  const fwd = forkHelper("lib/tcp-forwarder.mjs", [String(A.port)], "forwarder");
  const { port: lbPort } = await fwd.ask(null, "ready", 10_000);
  const baseUrl = `http://127.0.0.1:${lbPort}/`;

  const pub = publisher(B.port);

  // The clients, N/2 per worker.
  const specs = clientSpecs();
  const workers = [];
  const progress = new Map();
  const warnings = [];
  for (let w = 0; w < WORKERS; w++) {
    const wk = forkHelper("lib/storm-worker.mjs", [], `worker ${w}`);
    wk.child.on("message", (m) => {
      if (m.type === "progress") progress.set(w, m);
      else if (m.type === "error") warnings.push(`worker ${w}: ${m.error}`);
      else if (m.type === "warning" && warnings.length < 20) warnings.push(`worker ${w}: ${m.warning}`);
    });
    workers.push(wk);
  }
  const share = Math.ceil(N / WORKERS);
  const tSetup = nowMs();
  workers.forEach((wk, w) => wk.send({ type: "start", root: ROOT, baseUrl, clients: specs.slice(w * share, (w + 1) * share), batch: 50, pauseMs: 100, cold: args.cold }));
  const sum = (key) => [...progress.values()].reduce((a, p) => a + p[key], 0);
  const transportsNow = () => {
    const o = {};
    for (const p of progress.values()) for (const [k, v] of Object.entries(p.transports)) o[k] = (o[k] ?? 0) + v;
    return o;
  };

  // Steady state: every client has received something and kept its transport for 3 s.
  const setupLimit = 30_000 + N * 30;
  let lastLog = 0;
  for (;;) {
    if (warnings.some((w) => / Error|error:/.test(w)) && sum("opened") === 0) throw new Error(warnings.join("\n"));
    if (progress.size === WORKERS && sum("opened") === N && sum("stable") === N) break;
    if (nowMs() - tSetup > setupLimit)
      throw new Error(`no steady state within ${setupLimit} ms: ${sum("received")}/${N} received, ${sum("stable")} stable, ${JSON.stringify(transportsNow())}`);
    if (nowMs() - lastLog > 2000) {
      lastLog = nowMs();
      log(`setup: ${sum("opened")} opened, ${sum("received")} received, ${sum("stable")} stable, ${JSON.stringify(transportsNow())}`);
    }
    await sleep(100);
  }
  const setupMs = nowMs() - tSetup;
  const steadyTransports = transportsNow();
  log(`steady after ${(setupMs / 1000).toFixed(1)} s: ${JSON.stringify(steadyTransports)}`);

  // A steady baseline of B's CPU, then the cut.
  const cpu = sampler(B.pid, { A: A.pid, forwarder: fwd.pid, ...Object.fromEntries(workers.map((w, i) => [`worker ${i}`, w.pid])) });
  const cpuForwarder0 = cpuTicks(fwd.pid);
  const cpuWorkers0 = workers.map((w) => cpuTicks(w.pid));
  for (const wk of workers) wk.send({ type: "arm" });
  await sleep(2000);
  const switched = await fwd.ask({ type: "switch", port: B.port }, "switched", 5000);
  A.child.kill(CUT === "term" ? "SIGTERM" : "SIGKILL");
  const t0 = nowMs();
  const loadAtCut = os.loadavg();
  for (const wk of workers) wk.send({ type: "cut", t0 });
  log(`cut: load balancer → B (${round(t0 - switched.at, 1)} ms before), ${CUT === "term" ? "SIGTERM" : "SIGKILL"} A at T0`);

  // Watch until every client recovered and is back on its T0 transport, or --seconds.
  const deadline = t0 + SECONDS * 1000;
  lastLog = 0;
  let allRecoveredAt = null;
  while (nowMs() < deadline) {
    await sleep(100);
    const rec = sum("recovered");
    if (rec === N && allRecoveredAt === null) allRecoveredAt = nowMs();
    if (nowMs() - lastLog > 1000) {
      lastLog = nowMs();
      log(`T0+${((nowMs() - t0) / 1000).toFixed(1)} s: ${rec}/${N} recovered, ${sum("back")} on their T0 transport, ${JSON.stringify(transportsNow())}${A.exit ? "" : ", A still running"}`);
    }
    // Done once every client has recovered and is back on its T0 transport (or a better one), and A is gone (a drain
    // may keep clients on A for its whole window): then one more second of arrivals.
    if (rec === N && sum("back") === N && A.exit && nowMs() - Math.max(allRecoveredAt, A.exit.at) >= 1000) break;
  }
  const endAt = nowMs();
  cpu.stop();
  const cpuForwarder = (cpuTicks(fwd.pid) - cpuForwarder0) * TICK_MS / 1000;
  const cpuWorkers = workers.map((w, i) => (cpuTicks(w.pid) - cpuWorkers0[i]) * TICK_MS / 1000);
  const bStats = await getJson(B.port, "/message-bus/stats").catch((e) => ({ error: e.message }));
  const aExit = A.exit ? { code: A.exit.code, signal: A.exit.signal, afterMs: round(A.exit.at - t0) } : { stillRunning: true };

  // The last ids: what the publisher was acknowledged, checked against B.
  await pub.stop();
  const last = { ...pub.last };
  const fromB = await finalPositions(B.port).catch((e) => ({ error: e.message }));
  const disagree = fromB && !fromB.error ? CHANNELS.filter((c) => fromB[c] !== last[c]) : [];
  for (const c of disagree) last[c] = Math.max(last[c], fromB[c]);

  const results = await Promise.all(workers.map((wk) => wk.ask({ type: "final", last, waitMs: 15_000 }, "result", 60_000)));
  const clients = results.flatMap((r) => r.clients);
  const { arrivals } = await fwd.ask({ type: "arrivals" }, "arrivals", 10_000);
  for (const wk of workers) wk.send({ type: "stop" });

  const lat = pub.st.latencies.sort((a, b) => a - b);
  const result = {
    label: LABEL,
    root: ROOT,
    startedAt,
    node: process.version,
    cpus: os.cpus().length,
    load: { start: load0.map((l) => round(l, 2)), atCut: loadAtCut.map((l) => round(l, 2)), end: os.loadavg().map((l) => round(l, 2)) },
    params: { clients: N, cut: CUT, window: WINDOW, rate: RATE, seconds: SECONDS, channels: CHANNELS.length, perClient: PER_CLIENT, workers: WORKERS, seed: SEED, start: args.cold ? "cold" : "warm" },
    drainLimitPer100ms: WINDOW === null ? null : round((2 * N * BIN_MS) / WINDOW, 1),
    setup: { ms: round(setupMs, 0), transports: steadyTransports },
    a: aExit,
    observedMs: round(endAt - t0, 0),
    recovery: recoveryFigures(clients),
    arrivals: arrivalFigures(arrivals, t0, endAt, B.port),
    b: { ...cpuFigures(cpu.samples, t0, B.pid), stats: bStats },
    transports: transportFigures(clients),
    delivery: { ...deliveryFigures(clients, last), finalPollDisagrees: disagree, finalPollError: fromB?.error ?? null },
    publisher: { sent: pub.st.sent, acked: pub.st.acked, failed: pub.st.failed, firstError: pub.st.firstError, latencyP50Ms: round(quantile(lat, 0.5)), latencyP99Ms: round(quantile(lat, 0.99)), latencyMaxMs: round(lat[lat.length - 1]) },
    harnessCpuS: { forwarder: round(cpuForwarder, 2), workers: cpuWorkers.map((v) => round(v, 2)) },
    machine: machineFigures(cpu.samples, t0),
    requests: clients.reduce((a, c) => a + c.stats.requests, 0),
    // fetch rejections in the clients after T0 (not aborts), by cause
    fetchErrors: results.reduce((o, r) => {
      for (const [k, v] of Object.entries(r.fetchErrors ?? {})) o[k] = (o[k] ?? 0) + v;
      return o;
    }, {}),
    stderr: { A: A.stderr.trim().slice(0, 2000), B: B.stderr.trim().slice(0, 2000) },
    warnings,
  };
  result.markdown = markdownTable([result]);
  return result;
}

let exitCode = 0;
try {
  const result = await run();
  if (args.out) {
    mkdirSync(dirname(resolve(args.out)), { recursive: true });
    writeFileSync(args.out, JSON.stringify(result, null, 1) + "\n");
  }
  if (args.svg) {
    mkdirSync(dirname(resolve(args.svg)), { recursive: true });
    writeFileSync(args.svg, chartSvg([result]));
  }
  process.stdout.write(result.markdown + "\n");
} catch (e) {
  process.stderr.write(`storm: ${e?.stack ?? e}\n`);
  for (const c of children) if (c.stderr) process.stderr.write(`${c.name} stderr: ${c.stderr.slice(-2000)}\n`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
