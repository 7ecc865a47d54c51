/**
 * A strict reader of Prometheus's text exposition format (0.0.4): every line a `# HELP`, a `# TYPE`
 * or a sample; names and labels as the format allows them; each family's TYPE before its samples,
 * once; counters named `_total`; values numbers. Throws on the first line that breaks a rule.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)$/;

export function parsePrometheusText(text: string): { types: Map<string, string>; samples: Sample[] } {
  if (!text.endsWith("\n")) throw new Error("exposition must end with a newline");
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1} (${JSON.stringify(line)})`;
    // The format ignores empty lines (prom-client puts one between families).
    if (line === "") return;
    if (line.startsWith("# HELP ")) {
      const [name] = line.slice(7).split(" ", 1);
      if (!NAME.test(name) || helps.has(name)) throw new Error(`bad or repeated HELP at ${where}`);
      helps.add(name);
      return;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type, ...rest] = line.slice(7).split(" ");
      if (!NAME.test(name) || !TYPES.has(type) || rest.length || types.has(name)) throw new Error(`bad or repeated TYPE at ${where}`);
      if (type === "counter" && !name.endsWith("_total")) throw new Error(`counter without _total at ${where}`);
      types.set(name, type);
      return;
    }
    if (line.startsWith("#")) throw new Error(`unexpected line at ${where}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad sample at ${where}`);
    const [, name, , body, value] = m;
    if (!VALUE.test(value)) throw new Error(`bad value at ${where}`);
    const family = [...types.keys()].find((f) => name === f || (/_(bucket|sum|count)$/.test(name) && name.replace(/_(bucket|sum|count)$/, "") === f));
    if (!family) throw new Error(`sample before its TYPE at ${where}`);
    samples.push({ name, labels: body === undefined ? {} : parseLabels(body, where), value: Number(value.replace(/Inf$/, "Infinity")) });
  });
  return { types, samples };
}

function parseLabels(body: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = body;
  while (rest.length) {
    const m = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
    if (!m || !LABEL.test(m[1]) || m[1] in labels) throw new Error(`bad labels at ${where}`);
    labels[m[1]] = m[2].replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

/** The value of one sample, 0 when absent (a counter not yet moved). */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value ?? 0;
}
