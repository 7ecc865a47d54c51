// What one subscriber received: every stamped message (`"s":seq,"t":µs`) is counted once, and
// duplicates and messages that overtook an earlier one are told apart.
import { nowUs } from "./proc.mjs";

const STAMP = /"s":(\d+),"t":(\d+)/g;

export class Totals {
  constructor(histogram) {
    this.h = histogram;
    this.delivered = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.lastAt = 0;
    this.confirmed = 0;
    this.errors = 0;
    this.closed = 0;
    /** Frames, bodies or stream reads that held at least one message: deliveries / reads is the batching. */
    this.reads = 0;
    this.firstError = null;
  }
}

export class Tally {
  constructor(totals) {
    this.totals = totals;
    this.seen = new Uint8Array(1024);
    this.top = 0;
    this.confirmed = false;
  }

  confirm() {
    if (this.confirmed) return;
    this.confirmed = true;
    this.totals.confirmed++;
  }

  fail(e) {
    this.totals.errors++;
    this.totals.firstError ??= String(e?.message ?? e);
  }

  closed() {
    this.totals.closed++;
  }

  /** Scans text (whole frames, bodies or complete lines) for stamps. */
  scan(text) {
    STAMP.lastIndex = 0;
    let m;
    let now = 0;
    while ((m = STAMP.exec(text))) {
      now ||= nowUs();
      this.one(Number(m[1]), Number(m[2]), now);
    }
    if (now) this.totals.reads++;
  }

  one(seq, sentUs, now) {
    const t = this.totals;
    if (seq >= this.seen.length) {
      const grown = new Uint8Array(Math.max(seq + 1, this.seen.length * 2));
      grown.set(this.seen);
      this.seen = grown;
    }
    if (this.seen[seq]) {
      t.duplicates++;
      return;
    }
    this.seen[seq] = 1;
    if (seq < this.top) t.outOfOrder++;
    else this.top = seq;
    t.delivered++;
    t.lastAt = now;
    t.h.add(now - sentUs);
  }
}

/** Feeds complete lines of a stream to `fn`, keeping the unfinished rest. */
export function lineSplitter(fn) {
  let rest = "";
  return (chunk) => {
    const text = rest + chunk;
    const cut = text.lastIndexOf("\n");
    if (cut < 0) {
      rest = text;
      return;
    }
    rest = text.slice(cut + 1);
    fn(text.slice(0, cut + 1));
  };
}
