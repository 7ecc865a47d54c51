// Requests/s of message_bus polling (`?dlp=t`, nothing new: one small response) against a Hono
// hello-world on the same server and the same generator; and the same poll with the routes mounted
// in a Hono app (through the app, as with a user's own middleware).
import { Histogram } from "../lib/histogram.mjs";
import { cpuSeconds } from "../lib/proc.mjs";
import { spawnRaised, startServer } from "../lib/server.mjs";
import { sleep } from "../lib/wait.mjs";

const POLL = { method: "POST", path: "/mb/b1/poll?dlp=t", headers: { "Content-Type": "application/json" }, body: '{"/bench":0}' };
// The bus and a Hono app on one server, the bus first (bench/servers/cometbus.mjs, COMETBUS_SERVE).
const BESIDE = { COMETBUS_SERVE: "beside-hono" };
export const RPS_TARGETS = {
  "cometbus poll": { ...POLL, env: BESIDE },
  "hono hello-world": { method: "GET", path: "/hello", headers: {}, body: undefined, env: BESIDE },
  // The routes mounted in a Hono app: a poll goes through the app (its middleware would run).
  "cometbus poll in a Hono app": { ...POLL, env: { COMETBUS_SERVE: "in-hono" } },
  // The build before (BENCH_BEFORE_DIST, as in targets.mjs), polled the same way.
  ...(process.env.BENCH_BEFORE_DIST ? { "before poll": { ...POLL, env: { COMETBUS_DIST: process.env.BENCH_BEFORE_DIST } } } : {}),
};

const WORKER = new URL("../lib/rps-worker.mjs", import.meta.url).pathname;

export async function pollRps({ targetName, concurrency, durationMs, workers }) {
  const server = await startServer("cometbus", RPS_TARGETS[targetName].env);
  const children = [];
  try {
    await sleep(300);
    const pids = server.pids();
    const cpu0 = cpuSeconds(pids);
    for (let i = 0; i < workers; i++) children.push(spawnRaised(process.execPath, [WORKER], ["ignore", "inherit", "inherit", "ipc"]));
    const req = { port: server.port, ...RPS_TARGETS[targetName], concurrency: Math.ceil(concurrency / workers), durationMs };
    const totals = await Promise.all(
      children.map(
        (c) =>
          new Promise((resolve, reject) => {
            c.once("message", resolve);
            c.once("exit", (code) => reject(new Error(`rps worker exited ${code}`)));
            c.send(req);
          }),
      ),
    );
    const cpu = cpuSeconds(pids) - cpu0;
    const h = new Histogram();
    for (const t of totals) h.merge(Histogram.from(t.histogram));
    const n = totals.reduce((a, t) => a + t.requests, 0);
    const errors = totals.reduce((a, t) => a + t.errors, 0);
    const bytes = totals.reduce((a, t) => a + t.bytes, 0);
    const genCpu = totals.reduce((a, t) => a + t.cpuS, 0);
    return {
      requests: n,
      errors,
      rps: Math.round(n / (durationMs / 1000)),
      p50: h.quantile(0.5),
      p99: h.quantile(0.99),
      cpuUsPerRequest: n ? Math.round(((cpu * 1e6) / n) * 10) / 10 : null,
      bytesPerResponse: n ? Math.round(bytes / n) : null,
      generatorCpuS: Math.round(genCpu * 100) / 100,
    };
  } finally {
    for (const c of children) c.kill();
    await server.stop();
  }
}
