// The runtime dimension in one table: cometbus and the bare baseline on Node, Bun and Deno, CPU per
// delivery at 1k × 20 and 1k × 100 msg/s and RSS per idle connection, each as a ratio to the bare
// server on the same runtime and (CPU at 1k × 100) to nchan in the same run.
const RUNTIMES = ["node", "bun", "deno"];
const KINDS = ["ws", "sse"];

const nameOf = (who, kind, runtime) => `${who} ${kind}${runtime === "node" ? "" : ` · ${runtime}`}`;
const fmt = (v, d = 2) => (v == null || Number.isNaN(v) ? "–" : String(Math.round(v * 10 ** d) / 10 ** d));
const ratio = (a, b) => (a == null || !b ? null : a / b);

function cell(results, scenario, target) {
  return results.scenarios[scenario]?.cells.find((c) => c.target === target && !c.error) ?? null;
}

export function runtimeTable(results) {
  const lines = [
    "| transport | runtime | µs/delivery 1k×20 | vs bare | µs/delivery 1k×100 | vs bare | vs nchan | lost/dup/ooo 1k×100 | p99 ms 1k×100 | idle RSS/conn KB | vs bare |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
  ];
  for (const kind of KINDS) {
    const nchan = cell(results, "fanout-1k", `nchan ${kind}`);
    for (const runtime of RUNTIMES) {
      const us = (scenario, who) => cell(results, scenario, nameOf(who, kind, runtime))?.cpuUsPerDelivery ?? null;
      const idle = (who) => cell(results, "idle-10k", nameOf(who, kind, runtime))?.rssSettledPerConnKB ?? null;
      const hot = cell(results, "fanout-1k", nameOf("cometbus", kind, runtime));
      if (!hot && us("fanout-1k-r20", "cometbus") == null && idle("cometbus") == null) continue;
      lines.push(
        `| ${kind} | ${runtime} | ${fmt(us("fanout-1k-r20", "cometbus"))} | ${fmt(ratio(us("fanout-1k-r20", "cometbus"), us("fanout-1k-r20", "bare")))} ` +
          `| ${fmt(us("fanout-1k", "cometbus"))} | ${fmt(ratio(us("fanout-1k", "cometbus"), us("fanout-1k", "bare")))} ` +
          `| ${fmt(ratio(us("fanout-1k", "cometbus"), nchan?.cpuUsPerDelivery))} ` +
          `| ${hot ? `${hot.lost}/${hot.duplicates}/${hot.outOfOrder}` : "–"} | ${fmt(hot?.p99, 1)} ` +
          `| ${fmt(idle("cometbus"), 1)} | ${fmt(ratio(idle("cometbus"), idle("bare")))} |`,
      );
    }
  }
  return lines.join("\n") + "\n";
}
