import type { AppendRequest } from "../core/backend.js";

export interface Assigned {
  epoch: string;
  globalId: number;
  messageId: number;
}

interface Waiting {
  req: AppendRequest;
  resolve(a: Assigned): void;
  reject(e: unknown): void;
}

/**
 * Group commit for publishes: one batch in flight per process; appends that arrive meanwhile wait
 * and go together in the next one (one transaction, one fsync, one NOTIFY). Publishes are serialized
 * across processes anyway (ids must commit in order), so a quiet bus pays nothing and a busy one
 * stops paying a commit per message. A failed batch fails each of its appends: none was stored.
 */
export class PublishBatcher {
  private queue: Waiting[] = [];
  private running = false;

  constructor(
    private readonly run: (batch: AppendRequest[]) => Promise<Assigned[]>,
    private readonly maxCount = 200,
    private readonly maxBytes = 1 << 20,
  ) {}

  add(req: AppendRequest): Promise<Assigned> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    do {
      while (this.queue.length) {
        const batch = this.take();
        try {
          const assigned = await this.run(batch.map((w) => w.req));
          batch.forEach((w, i) => w.resolve(assigned[i]));
        } catch (e) {
          for (const w of batch) w.reject(e);
        }
      }
      // Publishers just answered often publish again at once: give them a turn to queue, so their
      // next messages travel together instead of the first alone and the rest after it.
      await new Promise((r) => setImmediate(r));
    } while (this.queue.length);
    this.running = false;
  }

  private take(): Waiting[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.maxCount) {
      bytes += this.queue[n].req.dataJson.length;
      // A batch holds at least one append, however large.
      if (n > 0 && bytes > this.maxBytes) break;
      n++;
    }
    return this.queue.splice(0, n);
  }
}
