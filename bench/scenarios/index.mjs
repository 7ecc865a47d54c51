// The benchmark's scenarios (fan-out, idle connections, poll requests/s), in the order they run.
import { TARGETS } from "../targets.mjs";
import { fanout } from "./fanout.mjs";
import { idle } from "./idle.mjs";
import { pollRps, RPS_TARGETS } from "./poll-rps.mjs";

const all = Object.keys(TARGETS);
const fanoutTargets = () => all;
/** Streams and held polls; plain polling and Bayeux long-polling hold no idle connection worth measuring. */
const idleTargets = () => all.filter((t) => !/chunked|polling|faye long-poll/.test(t));
const ms = (s) => s * 1000;

const fanoutSummary = (c) =>
  c.error
    ? `ERROR ${c.error.split("\n")[0]}`
    : `${c.delivered}/${c.expected} lost ${c.lost} dup ${c.duplicates} ooo ${c.outOfOrder} p50 ${c.p50} p99 ${c.p99} ms, ` +
      `${c.deliveriesPerSec}/s, ${c.cpuUsPerDelivery} µs/delivery, ${c.bytesPerDelivery} B/delivery, ${c.messagesPerRead} msgs/read, gen ${c.generatorCores} cores, ELU ${c.generatorElu}${c.generatorSaturated ? " SATURATED" : ""}`;

export const SCENARIOS = [
  {
    name: "fanout-1k-r20",
    describe: ({ quick, seconds }) => `${quick ? 200 : 1000} subscribers, 20 msg/s, ${seconds ?? (quick ? 5 : 15)} s`,
    targets: fanoutTargets,
    run: (t, { quick, workers, seconds }) => fanout({ targetName: t, subs: quick ? 200 : 1000, rate: 20, durationMs: ms(seconds ?? (quick ? 5 : 15)), workers }),
    summary: fanoutSummary,
  },
  {
    name: "fanout-1k",
    describe: ({ quick, seconds }) => `${quick ? 200 : 1000} subscribers, 100 msg/s, ${seconds ?? (quick ? 5 : 10)} s`,
    targets: fanoutTargets,
    run: (t, { quick, workers, seconds }) => fanout({ targetName: t, subs: quick ? 200 : 1000, rate: 100, durationMs: ms(seconds ?? (quick ? 5 : 10)), workers }),
    summary: fanoutSummary,
  },
  {
    name: "fanout-max",
    describe: ({ quick, seconds }) => `100 subscribers, publishing as fast as the server takes it, ${seconds ?? (quick ? 4 : 10)} s`,
    targets: fanoutTargets,
    run: (t, { quick, workers, seconds }) => fanout({ targetName: t, subs: 100, rate: 0, durationMs: ms(seconds ?? (quick ? 4 : 10)), workers }),
    summary: fanoutSummary,
  },

  {
    name: "idle-10k",
    describe: ({ quick, connections }) => `${(connections ?? (quick ? 2000 : 10_000)).toLocaleString("en")} idle connections per transport (RSS per connection 2 s after the last connected, and settled 6 s later; heap after a GC)`,
    targets: idleTargets,
    run: (t, { quick, workers, connections }) => idle({ targetName: t, connections: connections ?? (quick ? 2000 : 10_000), workers }),
    summary: (c) => (c.error ? `ERROR ${c.error.split("\n")[0]}` : `${c.connectS} s to connect, ${c.rssPerConnKB} KB RSS/conn (settled ${c.rssSettledPerConnKB}), ${c.heapPerConnKB} KB heap/conn`),
  },
  {
    name: "poll-rps",
    describe: ({ quick }) => `64 keep-alive connections, back-to-back requests, ${quick ? 3 : 8} s`,
    targets: () => Object.keys(RPS_TARGETS),
    run: (t, { quick, workers }) => pollRps({ targetName: t, concurrency: 64, durationMs: (quick ? 3 : 8) * 1000, workers }),
    summary: (c) => (c.error ? `ERROR ${c.error.split("\n")[0]}` : `${c.rps} req/s, p99 ${c.p99} ms, ${c.cpuUsPerRequest} µs/request`),
  },
];
