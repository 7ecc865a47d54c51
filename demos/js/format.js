// How numbers read in the panes.

export function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
}

export function bytes(v) {
  if (!v) return "0";
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(v < 10240 ? 1 : 0)} KB`;
  return `${(v / 1024 / 1024).toFixed(1)} MB`;
}

export function count(v) {
  return (v ?? 0).toLocaleString("en-US");
}

export function clock(date = new Date()) {
  return date.toTimeString().slice(0, 8);
}
