import type { BackendEvents, StoredMessage } from "../core/backend.js";

/** What a store answers when asked for the global backlog after some global id. */
export interface FeedPage {
  epoch: string;
  /** The last global id assigned in that epoch. */
  lastGlobalId: number;
  /** Retained messages after the asked id, ascending, at most one page. */
  messages: StoredMessage[];
}

/**
 * The per-process reader of a shared store (Redis, PostgreSQL). Notifications carry ids only and
 * may be lost (a dropped connection) or late; the reader never trusts them for content. It reads
 * the global backlog after the last global id it delivered, so every message reaches this process
 * once, in global-id order, whatever happened to the notifications; a notification or a reconnect
 * just says "read again".
 */
/** Every retained message after `afterGlobalId`, read a page at a time (`globalBacklog`). */
export async function readAllPages(
  read: (afterGlobalId: number) => Promise<FeedPage>,
  afterGlobalId: number,
  pageSize: number,
): Promise<StoredMessage[]> {
  const out: StoredMessage[] = [];
  for (;;) {
    const page = await read(out.length ? out[out.length - 1].global_id : afterGlobalId);
    out.push(...page.messages);
    if (page.messages.length < pageSize) return out;
  }
}

export class GlobalFeed {
  epoch = "";
  lastGlobalId = 0;
  /** Bumped when the epoch changes; a read begun before that belongs to the old epoch and is dropped. */
  private generation = 0;
  private running = false;
  private again = false;
  private retryTimer?: NodeJS.Timeout;
  private pollTimer?: NodeJS.Timeout;
  private closed = false;
  private begun = false;

  constructor(
    private readonly read: (afterGlobalId: number) => Promise<FeedPage>,
    private readonly events: BackendEvents,
    private readonly onError: (e: unknown) => void,
    private readonly retryMs = 500,
  ) {}

  /** Starts at the store's present position: only messages published from now on are delivered. */
  begin(epoch: string, lastGlobalId: number, safetyPollMs: number): void {
    this.epoch = epoch;
    this.lastGlobalId = lastGlobalId;
    this.begun = true;
    // A lost notification that nothing follows would otherwise wait for the next publish.
    if (safetyPollMs > 0) {
      this.pollTimer = setInterval(() => this.poke(), safetyPollMs);
      this.pollTimer.unref();
    }
  }

  /** A notification: `epoch:globalId`. Already-read ids from this epoch need no read. */
  notify(payload: string): void {
    const colon = payload.lastIndexOf(":");
    const epoch = payload.slice(0, colon);
    const id = Number(payload.slice(colon + 1));
    if (epoch === this.epoch && id <= this.lastGlobalId) return;
    this.poke();
  }

  /** Read whatever is new (after a reconnect, a notification, or the safety poll). */
  poke(): void {
    // Before `begin` there is no position to read from; `begin`'s caller reads right after.
    if (this.closed || !this.begun) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.pump();
  }

  /** The store said the epoch changed (reset here, or seen by a read): every position is void. */
  switchEpoch(epoch: string): void {
    if (epoch === this.epoch || this.closed) return;
    this.epoch = epoch;
    this.lastGlobalId = 0;
    this.generation++;
    try {
      this.events.epoch(epoch);
    } catch (e) {
      this.onError(e);
    }
  }

  private async pump(): Promise<void> {
    this.running = true;
    try {
      do {
        this.again = false;
        const generation = this.generation;
        let page: FeedPage;
        try {
          page = await this.read(this.lastGlobalId);
        } catch (e) {
          // A read cut short by close() is no news.
          if (this.closed) return;
          this.onError(e);
          this.retryLater();
          return;
        }
        if (this.closed) return;
        if (generation !== this.generation) {
          this.again = true;
          continue;
        }
        if (page.epoch !== this.epoch) {
          this.switchEpoch(page.epoch);
          this.again = true;
          continue;
        }
        const first = page.messages[0];
        if (first && first.global_id > this.lastGlobalId + 1) {
          // This process fell further behind than the global backlog holds (maxGlobalBacklogSize).
          this.onError(new Error(`cometbus: missed global ids ${this.lastGlobalId + 1}..${first.global_id - 1}: trimmed from the global backlog before this process read them`));
        }
        for (const m of page.messages) {
          if (m.global_id <= this.lastGlobalId) continue;
          this.lastGlobalId = m.global_id;
          try {
            this.events.message(m);
          } catch (e) {
            this.onError(e);
          }
        }
        // A page is bounded; more may wait behind it.
        if (page.messages.length && this.lastGlobalId < page.lastGlobalId) this.again = true;
        // The store went back (restored from an older copy): ids would repeat, so treat it as a new epoch.
        if (page.lastGlobalId < this.lastGlobalId) {
          this.onError(new Error(`cometbus: the store's last global id went back from ${this.lastGlobalId} to ${page.lastGlobalId}`));
          this.lastGlobalId = page.lastGlobalId;
        }
      } while (this.again && !this.closed);
    } finally {
      this.running = false;
    }
  }

  private retryLater(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.poke();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pollTimer);
  }
}
