// N idle subscribers on one target: how long they take to connect, and what each costs the server
// in RSS and (Node servers) heap, measured after a GC once all are confirmed.
import { TARGETS } from "../targets.mjs";
import { Generator } from "../lib/generator.mjs";
import { peakRss, rss } from "../lib/proc.mjs";
import { startServer } from "../lib/server.mjs";
import { subscribeAll } from "../lib/subscribe.mjs";
import { sleep } from "../lib/wait.mjs";

const KB = 1024;
const round = (x) => Math.round(x * 10) / 10;

async function memory(server) {
  const m = await server.mem();
  return { rss: m?.rss ?? rss(server.pids()), heap: m ? m.heapUsed + m.external : null };
}

export async function idle({ targetName, connections, workers }) {
  const target = TARGETS[targetName];
  const server = await startServer(target.server, target.env ?? {}, target.runtime);
  const gen = new Generator(workers);
  try {
    await sleep(300);
    const before = await memory(server);
    const sub = await subscribeAll(gen, target, server.port, connections, 120_000);
    if (!sub.ok) return { error: `only ${sub.confirmed}/${connections} connected (${sub.errors} errors)` };
    await sleep(2000);
    const after = await memory(server);
    // The connect storm's garbage leaves the heap large for a while; V8 hands pages back after some
    // seconds of quiet. Both figures are kept: right after connecting, and settled.
    await sleep(6000);
    const settled = await memory(server);
    return {
      connections,
      connectS: round(sub.connectMs / 1000),
      rssPerConnKB: round((after.rss - before.rss) / connections / KB),
      rssSettledPerConnKB: round((settled.rss - before.rss) / connections / KB),
      heapPerConnKB: settled.heap === null ? null : round((settled.heap - before.heap) / connections / KB),
      rssMB: round(after.rss / 2 ** 20),
      peakRssMB: round(peakRss(server.pids()) / 2 ** 20),
      clientErrors: gen.sum("errors"),
    };
  } finally {
    await server.stop();
    await gen.stop();
  }
}
