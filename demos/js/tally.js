// What one pane has received: counts, lost and doubled messages, and latencies.
// Loss shows as a hole in message ids; a duplicate as a message whose key was already seen.

const KEEP = 2000; // latencies kept for median and p99

export class Tally {
  constructor(startId) {
    this.lastId = startId;
    this.received = 0;
    this.lost = 0;
    this.duplicates = 0;
    this.resets = 0;
    this.latencies = [];
    this.seen = new Set();
    // An epoch restart seen through the ids before the client said so, not to be counted twice.
    this.restartsAhead = 0;
  }

  /** Returns "ok", "lost" (a hole before this one) or "duplicate". */
  add(data, messageId, receivedAt) {
    const key = keyOf(data);
    if (key !== null && this.seen.has(key)) {
      this.duplicates++;
      return "duplicate";
    }
    if (messageId <= this.lastId) {
      if (key === null) {
        this.duplicates++;
        return "duplicate";
      }
      // A message never seen at an old id: the backlog restarted (reset epoch) ahead of onReset.
      this.lastId = 0;
      this.restartsAhead++;
      this.resets++;
    }
    let verdict = "ok";
    if (messageId > this.lastId + 1) {
      this.lost += messageId - this.lastId - 1;
      verdict = "lost";
    }
    this.lastId = messageId;
    if (key !== null) this.seen.add(key);
    this.received++;
    if (data && typeof data.sentAt === "number") {
      // A burst's copies are published one after another; `after` is how long after the request each was.
      const publishedAt = data.sentAt + (typeof data.after === "number" ? data.after : 0);
      this.latencies.push(Math.max(0, receivedAt - publishedAt));
      if (this.latencies.length > KEEP) this.latencies.splice(0, this.latencies.length - KEEP);
    }
    return verdict;
  }

  /** The client reported that the channel restarted (new epoch): ids begin again at 1. */
  reset() {
    if (this.restartsAhead > 0) {
      this.restartsAhead--;
      return;
    }
    this.lastId = 0;
    this.resets++;
  }

  get last() {
    return this.latencies.length ? this.latencies[this.latencies.length - 1] : null;
  }

  /** Several percentiles from one sort: `[50, 99]` → `[median, p99]` (nulls before any message). */
  percentiles(ps) {
    if (!this.latencies.length) return ps.map(() => null);
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);
  }
}

function keyOf(data) {
  if (!data || typeof data.uid !== "string") return null;
  return typeof data.i === "number" ? `${data.uid}#${data.i}` : data.uid;
}
