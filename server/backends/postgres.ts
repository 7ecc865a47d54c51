import { createHash } from "node:crypto";
import pg from "pg";
import { type AppendRequest, type Backend, type BackendEvents, randomEpoch, type Snapshot, type StoredMessage, BackendUnavailableError } from "../core/backend.js";
import { type Assigned, PublishBatcher } from "./postgres-batch.js";
import { schemaSql } from "./postgres-schema.js";
import { reading, throttledReporter } from "./store-errors.js";
import { type FeedPage, GlobalFeed, readAllPages } from "./global-feed.js";
import { encodeMeta, publishedMessage, storedMessage } from "./stored-message.js";
import { PostgresLedger } from "./postgres-ledger.js";

export interface PostgresBackendOptions {
  /** `postgres://user@host:port/db`; `?schema=` sets `schema`, `?application_name=` names the connections. */
  url?: string;
  /** Schema holding cometbus's tables, created on first use. Default `cometbus`. */
  schema?: string;
  /** Pool size for publishes and reads. Default 10. */
  poolSize?: number;
  /** Messages read per round trip when catching up. Default 1000. */
  pageSize?: number;
  /** How often a process checks for messages whose notification it may have missed, in ms. Default 2000. */
  safetyPollMs?: number;
  /** Connection trouble and failed reads. Default: one `console.error` line per outage. */
  onError?: (error: unknown) => void;
}

interface Row {
  global_id: string;
  message_id: string;
  meta: string;
  data: string;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

/**
 * PostgreSQL as a shared store (README, "Backends and scale-out"): the publishes a process has queued are one call of a
 * function (one transaction) that assigns ids under an advisory lock and the `meta` row, stores,
 * trims, and NOTIFYs `epoch:lastGlobalId` (ids only: NOTIFY payloads are small, messages are not).
 * Every process LISTENs and reads the global backlog after the last id it delivered (GlobalFeed),
 * again after every reconnect.
 */
export class PostgresBackend implements Backend {
  readonly kind = "postgres";
  readonly schema: string;
  private readonly S: string;
  private readonly notifyChannel: string;
  /** Advisory lock serializing publishes: waiters queue in order instead of all waking per commit. */
  private readonly lockKey: string;
  private readonly config: pg.ClientConfig;
  private readonly pool: pg.Pool;
  private listener?: pg.Client;
  private feed?: GlobalFeed;
  private readonly pageSize: number;
  private readonly batcher = new PublishBatcher((batch) => this.publishBatch(batch));
  private readonly report: (e: unknown) => void;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  readonly ledger: PostgresLedger;

  constructor(private readonly options: PostgresBackendOptions = {}) {
    const { config, schema } = parsePostgresUrl(options.url ?? "postgres://postgres@127.0.0.1:5432/postgres");
    this.schema = options.schema ?? schema ?? "cometbus";
    if (!SCHEMA_NAME.test(this.schema)) throw new Error(`cometbus: bad PostgreSQL schema name "${this.schema}": letters, digits, _`);
    this.S = `"${this.schema}"`;
    this.notifyChannel = `${this.schema}_notify`;
    this.lockKey = BigInt("0x" + createHash("sha1").update(`cometbus:${this.schema}`).digest("hex").slice(0, 15)).toString();
    // A server that stops answering without closing (a network partition) fails publishes and
    // reads instead of holding them: connecting gives up after 5 s, a query after 10 s.
    this.config = { application_name: "cometbus", keepAlive: true, connectionTimeoutMillis: 5000, ...config };
    this.pageSize = options.pageSize ?? 1000;
    const user = options.onError;
    this.report = user ? (e) => e !== null && user(e) : throttledReporter("PostgreSQL");
    this.pool = new pg.Pool({ ...this.config, query_timeout: 10_000, max: options.poolSize ?? 10 });
    // An idle pooled connection that dies (server restart, pg_terminate_backend) is replaced on next use.
    this.pool.on("error", (e) => this.report(e));
    this.ledger = new PostgresLedger(this.pool, this.S, this.report);
  }

  get epoch(): string {
    return this.feed?.epoch ?? "";
  }

  async start(events: BackendEvents): Promise<void> {
    try {
      await this.connect(events);
    } catch (e) {
      // Nothing left running (pool, LISTEN reconnects) by a bus that failed to start.
      await this.close();
      throw new Error(`cometbus: cannot start on PostgreSQL (schema ${this.S}): ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async connect(events: BackendEvents): Promise<void> {
    await this.migrate();
    const feed = new GlobalFeed((after) => this.readGlobal(after), events, (e) => this.report(e));
    await this.listen();
    // Listening first, then reading where the store stands: whatever is published in between is
    // read by the poke below, nothing earlier is delivered.
    const page = await this.readGlobal(Number.MAX_SAFE_INTEGER);
    feed.begin(page.epoch, page.lastGlobalId, this.options.safetyPollMs ?? 2000);
    this.feed = feed;
    feed.poke();
  }

  async append(req: AppendRequest): Promise<StoredMessage> {
    let a: Assigned;
    try {
      a = await this.batcher.add(req);
    } catch (e) {
      throw new BackendUnavailableError("PostgreSQL", e);
    }
    if (this.feed && a.epoch !== this.feed.epoch) this.feed.poke();
    return publishedMessage(req, a.globalId, a.messageId);
  }

  private async publishBatch(batch: AppendRequest[]): Promise<Assigned[]> {
    const r = await this.pool.query<{ out_epoch: string; out_global_id: string; out_message_id: string }>(
      `SELECT * FROM ${this.S}.publish_batch($1, $2, $3, $4, $5, $6, $7, $8)`,
      [
        batch.map((q) => q.channel),
        batch.map(encodeMeta),
        batch.map((q) => q.dataJson),
        batch.map((q) => q.maxBacklogSize),
        batch.map((q) => q.maxBacklogAge),
        // The global backlog is one: the largest size asked for in the batch wins.
        Math.max(...batch.map((q) => q.maxGlobalBacklogSize)),
        this.notifyChannel,
        this.lockKey,
      ],
    );
    return r.rows.map((row) => ({ epoch: row.out_epoch, globalId: Number(row.out_global_id), messageId: Number(row.out_message_id) }));
  }

  backlog(channel: string, afterId: number, limit?: number): Promise<StoredMessage[]> {
    return reading("PostgreSQL", () => this.readBacklog(channel, afterId, limit));
  }

  private async readBacklog(channel: string, afterId: number, limit?: number): Promise<StoredMessage[]> {
    const r = await this.pool.query<Row>(
      `SELECT global_id, message_id, meta, data FROM ${this.S}.backlog
       WHERE channel = $1 AND message_id > $2 AND expires_at > (extract(epoch FROM now()) * 1000)::bigint
       ORDER BY message_id LIMIT $3`,
      [channel, afterId, limit ?? null],
    );
    return r.rows.map(decodeRow);
  }

  globalBacklog(afterGlobalId: number): Promise<StoredMessage[]> {
    return reading("PostgreSQL", () => readAllPages((after) => this.readGlobal(after), afterGlobalId, this.pageSize));
  }

  snapshot(channels: Iterable<string>): Promise<Snapshot> {
    return reading("PostgreSQL", () => this.readSnapshot(channels));
  }

  private async readSnapshot(channels: Iterable<string>): Promise<Snapshot> {
    const list = [...channels];
    // One statement, one snapshot: the epoch, the last global id and the channels' ids agree.
    const r = await this.pool.query<{ epoch: string; global_id: string; ids: Record<string, number> }>(
      `SELECT m.epoch, m.global_id,
         (SELECT coalesce(json_object_agg(c.channel, c.last_id), '{}') FROM ${this.S}.channels c WHERE c.channel = ANY($1)) AS ids
       FROM ${this.S}.meta m WHERE m.id = 1`,
      [list],
    );
    const { epoch, global_id, ids } = r.rows[0];
    if (this.feed && epoch !== this.feed.epoch) this.feed.poke();
    return { epoch, globalId: Number(global_id), lastIds: new Map(list.map((c) => [c, Number(ids[c] ?? 0)])) };
  }

  async reset(): Promise<void> {
    const epoch = randomEpoch();
    await this.pool.query(`SELECT ${this.S}.reset($1, $2)`, [epoch, this.notifyChannel]);
    this.feed?.switchEpoch(epoch);
  }

  /** Drops the schema and everything in it (tests, uninstall). */
  async destroy(): Promise<void> {
    this.feed?.close();
    await this.pool.query(`DROP SCHEMA IF EXISTS ${this.S} CASCADE`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed?.close();
    this.ledger.close();
    clearTimeout(this.reconnectTimer);
    const l = this.listener;
    this.listener = undefined;
    await Promise.all([l?.end().catch(() => {}), this.pool.end().catch(() => {})]);
  }

  /** Creates the schema on first use; the advisory lock keeps processes starting together from racing. */
  private async migrate(): Promise<void> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`cometbus:${this.schema}`]);
      await c.query(schemaSql(this.S));
      await c.query(`INSERT INTO ${this.S}.meta (id, epoch, global_id) VALUES (1, $1, 0) ON CONFLICT DO NOTHING`, [randomEpoch()]);
      await c.query("COMMIT");
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  /** A dedicated connection for LISTEN, reopened after any loss; each (re)open is followed by a read. */
  private async listen(): Promise<void> {
    const client = new pg.Client(this.config);
    let lost = false;
    const onLost = (e?: unknown) => {
      if (lost || this.closed) return;
      lost = true;
      if (e) this.report(e);
      client.end().catch(() => {});
      if (this.listener === client) this.listener = undefined;
      this.reconnectLater(100);
    };
    client.on("error", onLost);
    client.on("end", () => onLost(new Error("LISTEN connection ended")));
    client.on("notification", (n) => {
      if (n.channel === this.notifyChannel && n.payload) this.feed?.notify(n.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.notifyChannel}"`);
    } catch (e) {
      lost = true;
      client.end().catch(() => {});
      throw e;
    }
    if (this.closed) {
      lost = true;
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
    this.report(null);
    this.feed?.poke();
  }

  private reconnectLater(ms: number): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.listen().catch((e) => {
        this.report(e);
        this.reconnectLater(Math.min(ms * 2, 1000));
      });
    }, ms);
    this.reconnectTimer.unref();
  }

  private async readGlobal(after: number): Promise<FeedPage> {
    const r = await this.pool.query<Row & { epoch: string; last: string }>(
      `SELECT m.epoch, m.global_id AS last, g.global_id, g.message_id, g.meta, g.data
       FROM ${this.S}.meta m
       LEFT JOIN LATERAL (
         SELECT * FROM ${this.S}.global_backlog b WHERE b.global_id > $1 ORDER BY b.global_id LIMIT $2
       ) g ON true
       WHERE m.id = 1`,
      [after, this.pageSize],
    );
    // Reads succeed and LISTEN is up: whatever went wrong (a pooled connection cut, say) is over.
    if (this.listener) this.report(null);
    const first = r.rows[0];
    const messages = first.global_id === null ? [] : r.rows.map(decodeRow);
    return { epoch: first.epoch, lastGlobalId: Number(first.last), messages };
  }
}

function decodeRow(r: Row): StoredMessage {
  return storedMessage(Number(r.global_id), Number(r.message_id), r.meta, r.data);
}

/** Takes cometbus's own `schema` out of the URL; pg reads the rest (application_name, ssl, …). */
export function parsePostgresUrl(raw: string): { config: pg.ClientConfig; schema?: string } {
  const u = new URL(raw);
  const schema = u.searchParams.get("schema") ?? undefined;
  u.searchParams.delete("schema");
  const config: pg.ClientConfig = { connectionString: u.toString() };
  const app = u.searchParams.get("application_name");
  if (app) config.application_name = app;
  return { config, schema };
}

export function createBackend(url: string): Backend {
  return new PostgresBackend({ url });
}
