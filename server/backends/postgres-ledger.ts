import type pg from "pg";
import { BackendUnavailableError, type Claim, type LedgerTerms, type RequestLedger } from "../core/backend.js";

/**
 * The request ledger of the PostgreSQL store (docs/protocol.md#12-requests), in the backend's schema:
 * `claim_request` locks the client's row, so one client's claims serialize across processes; time
 * is the database's. Clients idle past `keepMs` are forgotten by a sweep every quarter of it.
 */
export class PostgresLedger implements RequestLedger {
  private sweeper?: ReturnType<typeof setInterval>;

  constructor(
    private readonly pool: pg.Pool,
    private readonly S: string,
    private readonly report: (e: unknown) => void,
  ) {}

  async claim(who: string, id: number, t: LedgerTerms): Promise<Claim> {
    this.sweep(t.keepMs);
    const r = await this.query<{ out_state: string; out_reply: string | null }>(`SELECT * FROM ${this.S}.claim_request($1, $2, $3, $4)`, [
      who,
      id,
      t.claimMs,
      t.window,
    ]);
    const { out_state: state, out_reply: reply } = r.rows[0];
    return state === "done" ? { state, reply: reply! } : { state: state as "run" | "running" | "stale" };
  }

  async settle(who: string, id: number, reply: string): Promise<void> {
    await this.query(`UPDATE ${this.S}.requests SET reply = $3, claimed_until = 0 WHERE who = $1 AND id = $2`, [who, id, reply]);
  }

  async release(who: string, id: number): Promise<void> {
    await this.query(`UPDATE ${this.S}.requests SET claimed_until = 0 WHERE who = $1 AND id = $2 AND reply IS NULL`, [who, id]);
  }

  private sweep(keepMs: number): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      this.pool.query(`SELECT ${this.S}.forget_requests($1)`, [keepMs]).catch((e) => this.report(e));
    }, Math.max(10_000, keepMs / 4));
    this.sweeper.unref();
  }

  private async query<R extends pg.QueryResultRow>(sql: string, args: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, args);
    } catch (e) {
      throw new BackendUnavailableError("PostgreSQL", e, "request not run");
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
