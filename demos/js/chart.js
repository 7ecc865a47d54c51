// A small latency chart on a canvas: the most recent messages left to right, latency on a log
// scale shared by every pane (1 ms … 10 s), so panes compare at a glance.

const MIN_MS = 0.5;
const MAX_MS = 20000;
const GRID = [
  [1, "1 ms"],
  [10, "10 ms"],
  [100, "100 ms"],
  [1000, "1 s"],
  [10000, "10 s"],
];
const POINTS = 120;

export function drawLatencyChart(canvas, latencies, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const pad = 3 * dpr;
  const y = (ms) => {
    const t = (Math.log10(Math.min(MAX_MS, Math.max(MIN_MS, ms))) - Math.log10(MIN_MS)) / (Math.log10(MAX_MS) - Math.log10(MIN_MS));
    return h - pad - t * (h - 2 * pad);
  };

  for (const [ms] of GRID) {
    const gy = Math.round(y(ms)) + 0.5;
    ctx.strokeStyle = "#e8ebf2";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, gy);
    ctx.lineTo(w, gy);
    ctx.stroke();
  }

  const recent = latencies.slice(-POINTS);
  if (recent.length) drawPoints(ctx, recent, { w, h, pad, y, color, dpr });

  // Labels last, on a veil, so the line never hides them.
  ctx.font = `${9 * dpr}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  for (const [ms, label] of GRID) {
    const ly = Math.round(y(ms)) - 5 * dpr;
    ctx.fillStyle = "rgba(250, 251, 253, 0.8)";
    ctx.fillRect(2 * dpr, ly - 5 * dpr, ctx.measureText(label).width + 2 * dpr, 10 * dpr);
    ctx.fillStyle = "#a0a7b7";
    ctx.fillText(label, 3 * dpr, ly);
  }
}

function drawPoints(ctx, recent, { w, h, pad, y, color, dpr }) {
  const step = (w - 2 * pad) / Math.max(1, POINTS - 1);
  const x0 = pad + (POINTS - recent.length) * step;

  ctx.beginPath();
  recent.forEach((ms, i) => (i ? ctx.lineTo(x0 + i * step, y(ms)) : ctx.moveTo(x0, y(ms))));
  ctx.lineTo(x0 + (recent.length - 1) * step, h);
  ctx.lineTo(x0, h);
  ctx.closePath();
  ctx.fillStyle = withAlpha(color, 0.12);
  ctx.fill();

  ctx.beginPath();
  recent.forEach((ms, i) => (i ? ctx.lineTo(x0 + i * step, y(ms)) : ctx.moveTo(x0, y(ms))));
  ctx.strokeStyle = withAlpha(color, 0.55);
  ctx.lineWidth = 1.2 * dpr;
  ctx.stroke();

  ctx.fillStyle = color;
  const r = 1.6 * dpr;
  recent.forEach((ms, i) => {
    ctx.beginPath();
    ctx.arc(x0 + i * step, y(ms), i === recent.length - 1 ? r * 1.8 : r, 0, Math.PI * 2);
    ctx.fill();
  });
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.replace("#", ""), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}
