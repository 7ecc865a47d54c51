// One fan-out cell: S subscribers of one target, messages at rate R (or max) for D, then everything
// the goals and the README's table need: counts, losses, latency, deliveries/s, server CPU and
// memory, generator CPU.
import { TARGETS } from "../targets.mjs";
import { Generator } from "../lib/generator.mjs";
import { Histogram } from "../lib/histogram.mjs";
import { bytesWritten, cpuSeconds, peakRss } from "../lib/proc.mjs";
import { publish } from "../lib/publisher.mjs";
import { startServer } from "../lib/server.mjs";
import { subscribeAll } from "../lib/subscribe.mjs";
import { sleep, until } from "../lib/wait.mjs";

/** A generator worker this busy (event-loop utilisation) is the bottleneck of its cell, not the server. */
export const SATURATED_ELU = 0.9;

const round = (x, d = 1) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d);

export async function fanout({ targetName, subs, rate, durationMs, workers }) {
  const target = TARGETS[targetName];
  const server = await startServer(target.server, target.env ?? {}, target.runtime);
  const gen = new Generator(workers);
  try {
    const sub = await subscribeAll(gen, target, server.port, subs, 60_000);
    if (!sub.ok) return { error: `only ${sub.confirmed}/${subs} subscribed (${sub.errors} errors)` };
    await sleep(500);
    const pids = server.pids();
    const cpu0 = cpuSeconds(pids);
    const bytes0 = bytesWritten(pids);
    gen.mark();
    const gen0 = gen.cpu() + process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6;
    const behind = (seq) => seq - gen.sum("delivered") / subs;
    const pub = await publish({ port: server.port, target, rate, durationMs, lagging: behind });
    const expected = pub.sent * subs;
    // Drain: until everything arrived, or nothing more arrives for 2 s.
    let last = -1;
    let still = 0;
    await until(() => {
      const d = gen.sum("delivered");
      if (d >= expected) return true;
      still = d === last ? still + 1 : 0;
      last = d;
      return still >= 20;
    }, 30_000);
    const cpu = cpuSeconds(pids) - cpu0;
    const bytes = bytesWritten(pids) - bytes0;
    const u = process.cpuUsage();
    const genCpu = gen.cpu() + u.user / 1e6 + u.system / 1e6 - gen0;
    const peak = peakRss(pids);
    const totals = await gen.finish();
    const h = new Histogram();
    for (const t of totals) h.merge(Histogram.from(t.histogram));
    const sum = (k) => totals.reduce((a, t) => a + t[k], 0);
    const delivered = sum("delivered");
    const lastAt = Math.max(...totals.map((t) => t.lastAt));
    const seconds = (lastAt - pub.firstUs) / 1e6;
    return {
      subs,
      rate: rate || "max",
      connectMs: Math.round(sub.connectMs),
      sent: pub.sent,
      publishFailed: pub.failed,
      expected,
      delivered,
      lost: expected - delivered,
      duplicates: sum("duplicates"),
      outOfOrder: sum("outOfOrder"),
      disconnects: sum("closed"),
      clientErrors: sum("errors"),
      firstError: totals.find((t) => t.firstError)?.firstError ?? null,
      p50: h.quantile(0.5),
      p90: h.quantile(0.9),
      p99: h.quantile(0.99),
      max: round(h.max / 1000, 2),
      deliveriesPerSec: Math.round(delivered / seconds),
      serverCpuS: round(cpu, 2),
      cpuUsPerDelivery: delivered ? round((cpu * 1e6) / delivered, 2) : null,
      peakRssMB: round(peak / 2 ** 20),
      bytesPerDelivery: delivered ? Math.round(bytes / delivered) : null,
      // Messages per frame (WebSocket), per response (polls) or per read (streams): how much was batched.
      messagesPerRead: sum("reads") ? round(delivered / sum("reads"), 2) : null,
      generatorElu: round(Math.max(...totals.map((t) => t.elu ?? 0)), 2),
      generatorSaturated: totals.some((t) => (t.elu ?? 0) >= SATURATED_ELU),
      generatorCpuS: round(genCpu, 2),
      generatorCores: round(genCpu / seconds, 2),
    };
  } finally {
    await server.stop();
    await gen.stop();
  }
}
