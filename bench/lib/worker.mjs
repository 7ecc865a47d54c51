// A generator process: opens its share of subscribers, reports progress, and hands back its totals.
import http from "node:http";
import * as ws from "../clients/ws.mjs";
import * as stream from "../clients/stream.mjs";
import * as poll from "../clients/poll.mjs";
import { Histogram } from "./histogram.mjs";
import { Tally, Totals } from "./tally.mjs";

const CLIENTS = { ...ws, ...stream, ...poll };
const totals = new Totals(new Histogram());
const stops = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
let timer;
/** Event-loop utilisation from the start of the measured part (`mark`): near 1, this generator is the bottleneck. */
let elu0 = performance.eventLoopUtilization();

function report() {
  const { delivered, confirmed, errors, closed, lastAt } = totals;
  process.send({ type: "progress", delivered, confirmed, errors, closed, lastAt });
}

async function open({ client, port, from, count, batch = 100, pauseMs = 20 }) {
  const make = CLIENTS[client];
  if (!make) throw new Error(`no client ${client}`);
  for (let i = 0; i < count; i++) {
    const t = new Tally(totals);
    const stop = make({ port, id: from + i, agent }, t);
    stops.push(typeof stop === "function" ? stop : () => stop.stop());
    if ((i + 1) % batch === 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
}

process.on("message", async (m) => {
  if (m.type === "open") {
    timer = setInterval(report, 100);
    await open(m);
  } else if (m.type === "mark") {
    elu0 = performance.eventLoopUtilization();
  } else if (m.type === "finish") {
    clearInterval(timer);
    report();
    const { delivered, duplicates, outOfOrder, lastAt, confirmed, errors, closed, firstError, reads } = totals;
    const elu = performance.eventLoopUtilization(elu0).utilization;
    process.send({ type: "totals", delivered, duplicates, outOfOrder, lastAt, confirmed, errors, closed, firstError, elu, reads, histogram: totals.h.toJSON() });
  } else if (m.type === "stop") {
    for (const s of stops) s();
    process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
