// A latency histogram that workers can ship to the runner as one small array: 10 µs buckets up to
// 100 ms, then 1 ms buckets up to 100 s.
const FINE = 10_000;
const COARSE = 100_000;

export class Histogram {
  constructor(counts) {
    this.counts = counts ?? new Array(FINE + COARSE).fill(0);
    this.max = 0;
    this.n = 0;
  }

  add(us) {
    if (us < 0) us = 0;
    const b = us < FINE * 10 ? Math.floor(us / 10) : Math.min(FINE + Math.floor(us / 1000), FINE + COARSE - 1);
    this.counts[b]++;
    this.n++;
    if (us > this.max) this.max = us;
  }

  merge(other) {
    for (let i = 0; i < other.counts.length; i++) this.counts[i] += other.counts[i];
    this.n += other.n;
    this.max = Math.max(this.max, other.max);
  }

  /** Milliseconds at quantile q (upper edge of the bucket). */
  quantile(q) {
    if (!this.n) return null;
    const want = Math.ceil(q * this.n);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= want) return i < FINE ? ((i + 1) * 10) / 1000 : i - FINE + 1;
    }
    return this.max / 1000;
  }

  toJSON() {
    // Sparse: most buckets are empty.
    const sparse = [];
    this.counts.forEach((c, i) => c && sparse.push([i, c]));
    return { sparse, max: this.max, n: this.n };
  }

  static from({ sparse, max, n }) {
    const h = new Histogram();
    for (const [i, c] of sparse) h.counts[i] = c;
    h.max = max;
    h.n = n;
    return h;
  }
}
