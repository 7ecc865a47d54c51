// The scenarios of issue 7, in the order they run.
import { TARGETS } from "../targets.mjs";
import { fanout } from "./fanout.mjs";

const all = Object.keys(TARGETS);
const fanoutTargets = () => all.filter((t) => t !== "cometbus chunked" || true);
const ms = (s) => s * 1000;

const fanoutSummary = (c) =>
  c.error
    ? `ERROR ${c.error.split("\n")[0]}`
    : `${c.delivered}/${c.expected} lost ${c.lost} dup ${c.duplicates} ooo ${c.outOfOrder} p50 ${c.p50} p99 ${c.p99} ms, ` +
      `${c.deliveriesPerSec}/s, ${c.cpuUsPerDelivery} µs/delivery, gen ${c.generatorCores} cores`;

export const SCENARIOS = [
  {
    name: "fanout-1k-r20",
    describe: ({ quick }) => `${quick ? 200 : 1000} subscribers, 20 msg/s, ${quick ? 5 : 15} s`,
    targets: fanoutTargets,
    run: (t, { quick, workers }) => fanout({ targetName: t, subs: quick ? 200 : 1000, rate: 20, durationMs: ms(quick ? 5 : 15), workers }),
    summary: fanoutSummary,
  },
  {
    name: "fanout-1k",
    describe: ({ quick }) => `${quick ? 200 : 1000} subscribers, 100 msg/s, ${quick ? 5 : 10} s`,
    targets: fanoutTargets,
    run: (t, { quick, workers }) => fanout({ targetName: t, subs: quick ? 200 : 1000, rate: 100, durationMs: ms(quick ? 5 : 10), workers }),
    summary: fanoutSummary,
  },
  {
    name: "fanout-max",
    describe: ({ quick }) => `100 subscribers, publishing as fast as the server takes it, ${quick ? 4 : 10} s`,
    targets: fanoutTargets,
    run: (t, { quick, workers }) => fanout({ targetName: t, subs: 100, rate: 0, durationMs: ms(quick ? 4 : 10), workers }),
    summary: fanoutSummary,
  },
];
