#!/usr/bin/env node
// Arrivals at B per 100 ms against time from T0, for one or more deploy-storm runs (bench/storm.mjs
// JSONs), as a small hand-written SVG: axes, one polyline per run, labels, and the drain contract's
// limit (2 × N × 100 ms / window) as a dashed line where a run had a window.
//
//   node bench/lib/storm-chart.mjs a.json b.json … --svg out.svg [--title TEXT] [--xmax SECONDS]
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const W = 760;
const PLOT_H = 240;
const M = { left: 56, right: 16, top: 34, bottom: 50 };
const LEGEND_LINE = 15;

const esc = (t) => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A round step giving about `n` ticks over `span`. */
function step(span, n) {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((k) => k * p).find((k) => k >= raw) ?? 10 * p;
}

export function runName(r) {
  return `${r.label}, N=${r.params.clients}, ${r.params.cut === "term" ? "SIGTERM" : "SIGKILL"}${r.params.window ? `, window ${r.params.window} ms` : ""}`;
}

/** The SVG text for `runs`. */
export function chartSvg(runs, { title, xmax } = {}) {
  const H = M.top + PLOT_H + M.bottom + runs.length * LEGEND_LINE + 6;
  const series = runs.map((r) => {
    const { series: s, fromMs, binMs } = r.arrivals;
    let last = s.length - 1;
    while (last > 0 && s[last] === 0) last--;
    return { r, s, fromMs, binMs, lastMs: fromMs + (last + 1) * binMs };
  });
  const x0 = Math.min(...series.map((x) => x.fromMs)) / 1000;
  const x1 = xmax ?? Math.max(5, Math.ceil(Math.max(...series.map((x) => x.lastMs)) / 1000 + 1));
  const limits = [...new Set(runs.map((r) => r.drainLimitPer100ms).filter((v) => v !== null && v !== undefined))];
  const yTop = Math.max(1, ...series.map((x) => Math.max(...x.s)), ...limits);
  const ys = step(yTop, 5);
  const y1 = Math.ceil(yTop / ys) * ys;
  const pw = W - M.left - M.right;
  const ph = PLOT_H;
  const X = (sec) => M.left + ((sec - x0) / (x1 - x0)) * pw;
  const Y = (v) => M.top + ph - (v / y1) * ph;
  const f = (v) => v.toFixed(1);

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(title ?? (runs.length === 1 ? `Connections arriving at B per 100 ms — ${runName(runs[0])}` : "Connections arriving at B per 100 ms"))}</text>`);
  // Grid and ticks.
  const xs = step(x1 - x0, 10);
  for (let v = Math.ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs) {
    out.push(`<line x1="${f(X(v))}" y1="${M.top}" x2="${f(X(v))}" y2="${M.top + ph}" stroke="${Math.abs(v) < 1e-9 ? "#888" : "#eee"}"/>`);
    out.push(`<text x="${f(X(v))}" y="${M.top + ph + 14}" text-anchor="middle">${+v.toFixed(3)}</text>`);
  }
  for (let v = 0; v <= y1 + 1e-9; v += ys) {
    out.push(`<line x1="${M.left}" y1="${f(Y(v))}" x2="${M.left + pw}" y2="${f(Y(v))}" stroke="#eee"/>`);
    out.push(`<text x="${M.left - 6}" y="${f(Y(v) + 4)}" text-anchor="end">${+v.toFixed(3)}</text>`);
  }
  out.push(`<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="#000"/>`);
  out.push(`<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#000"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${M.top + ph + 32}" text-anchor="middle">seconds from T0 (load balancer switched to B, A signalled)</text>`);
  out.push(`<text transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">connections per 100 ms</text>`);
  // The drain contract.
  for (const l of limits) {
    out.push(`<line x1="${M.left}" y1="${f(Y(l))}" x2="${M.left + pw}" y2="${f(Y(l))}" stroke="#555" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${M.left + pw - 4}" y="${f(Y(l) - 4)}" text-anchor="end" fill="#555">drain limit ${l} (2 × N × 100 ms / window)</text>`);
  }
  // One polyline per run, clipped to the x range.
  series.forEach(({ r, s, fromMs, binMs }, i) => {
    const pts = [];
    for (let k = 0; k < s.length; k++) {
      const sec = (fromMs + k * binMs) / 1000;
      if (sec > x1) break;
      pts.push(`${f(X(sec))},${f(Y(s[k]))}`, `${f(X(sec + binMs / 1000))},${f(Y(s[k]))}`);
    }
    out.push(`<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.3" points="${pts.join(" ")}"/>`);
  });
  // Legend, under the plot.
  series.forEach(({ r }, i) => {
    const y = M.top + ph + M.bottom + 4 + i * LEGEND_LINE;
    const rec = r.recovery;
    const text = `${runName(r)}: peak ${r.arrivals.peak} at ${((r.arrivals.peakAtMs ?? 0) / 1000).toFixed(1)} s; recovered p50 ${fmtS(rec.p50Ms)}, p99 ${fmtS(rec.p99Ms)}, max ${fmtS(rec.maxMs)}`;
    out.push(`<line x1="${M.left}" y1="${y - 4}" x2="${M.left + 14}" y2="${y - 4}" stroke="${COLORS[i % COLORS.length]}" stroke-width="2"/>`);
    out.push(`<text x="${M.left + 20}" y="${y}">${esc(text)}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

const fmtS = (ms) => (ms === null || ms === undefined ? "never" : `${(ms / 1000).toFixed(2)} s`);

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { svg: { type: "string" }, title: { type: "string" }, xmax: { type: "string" } },
  });
  if (!positionals.length || !values.svg) {
    process.stderr.write("usage: node bench/lib/storm-chart.mjs a.json b.json … --svg out.svg [--title TEXT] [--xmax SECONDS]\n");
    process.exit(2);
  }
  const runs = positionals.map((p) => JSON.parse(readFileSync(p, "utf8")));
  writeFileSync(values.svg, chartSvg(runs, { title: values.title, xmax: values.xmax ? Number(values.xmax) : undefined }));
}
