import type { Claim, LedgerTerms, RequestLedger } from "../core/backend.js";

interface Entry {
  reply?: string;
  claimedUntil: number;
}

interface Client {
  /** The highest id claimed: ids at or below `max - window` are stale. */
  max: number;
  entries: Map<number, Entry>;
  lastUsed: number;
}

/**
 * Replies kept in this process: for the memory store, and for any store without a ledger of its own.
 * Bounded per client by the window of ids and in time by `keepMs` after a client's last request.
 */
export class MemoryLedger implements RequestLedger {
  private readonly clients = new Map<string, Client>();
  private sweeper?: ReturnType<typeof setInterval>;
  private keepMs = 0;

  async claim(who: string, id: number, terms: LedgerTerms): Promise<Claim> {
    const now = Date.now();
    this.watch(terms.keepMs);
    let c = this.clients.get(who);
    if (!c) this.clients.set(who, (c = { max: 0, entries: new Map(), lastUsed: now }));
    c.lastUsed = now;
    const e = c.entries.get(id);
    if (e?.reply !== undefined) return { state: "done", reply: e.reply };
    if (e && e.claimedUntil > now) return { state: "running" };
    if (id <= c.max - terms.window) return { state: "stale" };
    if (id > c.max) {
      c.max = id;
      for (const old of c.entries.keys()) if (old <= id - terms.window) c.entries.delete(old);
    }
    c.entries.set(id, { claimedUntil: now + terms.claimMs });
    return { state: "run" };
  }

  async settle(who: string, id: number, reply: string, terms: LedgerTerms): Promise<void> {
    const c = this.clients.get(who);
    // Only what was claimed (and is still in the window) is settled.
    if (!c || !c.entries.has(id) || id <= c.max - terms.window) return;
    c.entries.set(id, { reply, claimedUntil: 0 });
    c.lastUsed = Date.now();
  }

  async release(who: string, id: number): Promise<void> {
    const e = this.clients.get(who)?.entries.get(id);
    if (e && e.reply === undefined) e.claimedUntil = 0;
  }

  /** Forgets clients idle for longer than `keepMs`, checked a few times per `keepMs`. */
  private watch(keepMs: number): void {
    if (this.sweeper && keepMs >= this.keepMs) return;
    this.keepMs = keepMs;
    clearInterval(this.sweeper);
    this.sweeper = setInterval(() => {
      const before = Date.now() - this.keepMs;
      for (const [who, c] of this.clients) if (c.lastUsed < before) this.clients.delete(who);
    }, Math.max(1000, this.keepMs / 4));
    (this.sweeper as { unref?(): void }).unref?.();
  }

  /** Clients remembered now (tests, stats). */
  get size(): number {
    return this.clients.size;
  }

  close(): void {
    clearInterval(this.sweeper);
    this.clients.clear();
  }
}
