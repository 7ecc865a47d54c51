// The results as Markdown tables, one per scenario.
const fmt = (v) => (v === null || v === undefined ? "–" : typeof v === "number" ? v.toLocaleString("en-US") : String(v));

const COLUMNS = {
  fanout: [
    ["target", "target"],
    ["sent", "sent"],
    ["delivered", "delivered"],
    ["lost", "lost"],
    ["dup", "duplicates"],
    ["ooo", "outOfOrder"],
    ["p50 ms", "p50"],
    ["p90 ms", "p90"],
    ["p99 ms", "p99"],
    ["max ms", "max"],
    ["deliveries/s", "deliveriesPerSec"],
    ["server CPU s", "serverCpuS"],
    ["µs/delivery", "cpuUsPerDelivery"],
    ["peak RSS MB", "peakRssMB"],
    ["bytes/delivery", "bytesPerDelivery"],
    ["msgs/read", "messagesPerRead"],
    ["gen CPU s", "generatorCpuS"],
    ["gen ELU", "genElu"],
    ["load", "load1"],
  ],
  idle: [
    ["target", "target"],
    ["connections", "connections"],
    ["connect s", "connectS"],
    ["RSS/conn KB", "rssPerConnKB"],
    ["settled RSS/conn KB", "rssSettledPerConnKB"],
    ["heap/conn KB", "heapPerConnKB"],
    ["RSS MB", "rssMB"],
    ["peak RSS MB", "peakRssMB"],
  ],
  rps: [
    ["target", "target"],
    ["requests/s", "rps"],
    ["p50 ms", "p50"],
    ["p99 ms", "p99"],
    ["server µs/request", "cpuUsPerRequest"],
    ["bytes/response", "bytesPerResponse"],
    ["gen CPU s", "generatorCpuS"],
  ],
};

/** The generator's event-loop utilisation, flagged where it, not the server, limited the cell. */
const elu = (c) => (c.generatorElu == null ? null : `${c.generatorElu}${c.generatorSaturated ? " **saturated**" : ""}`);

function kind(name) {
  return name.startsWith("idle") ? "idle" : name.startsWith("poll") ? "rps" : "fanout";
}

export function markdown(results) {
  const m = results.machine;
  let out = `Run ${results.date}${results.quick ? " (--quick)" : ""} on ${m.cpus} × ${m.model}, ${m.memGB} GB, Node ${m.node}, Linux ${m.kernel}.\n`;
  for (const [name, { describe, cells }] of Object.entries(results.scenarios)) {
    const cols = COLUMNS[kind(name)];
    out += `\n**${name}** — ${describe}\n\n| ${cols.map((c) => c[0]).join(" | ")} |\n|${cols.map((c, i) => (i ? "---:" : "---")).join("|")}|\n`;
    for (const c of cells) {
      if (c.error) out += `| ${c.target} | error: ${c.error.split("\n")[0].replaceAll("|", "/")} |\n`;
      else out += `| ${cols.map(([, k]) => fmt(k === "genElu" ? elu(c) : c[k])).join(" | ")} |\n`;
    }
  }
  return out;
}
