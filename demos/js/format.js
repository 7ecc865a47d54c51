// How numbers read in the panes.

// Each unit is chosen on the value as it will be shown, so 9.96 reads "10 ms", not "10.0 ms": a
// number never gains a digit at a unit's edge (the panes are sized for the widest form).
export function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 9.95) return `${v.toFixed(1)} ms`;
  if (v < 999.5) return `${Math.round(v)} ms`;
  if (v < 9995) return `${(v / 1000).toFixed(2)} s`;
  return `${(v / 1000).toFixed(1)} s`;
}

export function bytes(v) {
  if (!v) return "0";
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 9.95) return `${(v / 1024).toFixed(1)} KB`;
  if (v < 1024 * 1023.5) return `${Math.round(v / 1024)} KB`;
  return `${(v / 1024 / 1024).toFixed(1)} MB`;
}

export function count(v) {
  return (v ?? 0).toLocaleString("en-US");
}

export function clock(date = new Date()) {
  return date.toTimeString().slice(0, 8);
}
