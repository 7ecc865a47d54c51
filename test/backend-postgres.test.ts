import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import type { AppendRequest } from "../server/core/backend.js";
import { PublishBatcher } from "../server/backends/postgres-batch.js";
import { parsePostgresUrl, PostgresBackend } from "../server/backends/postgres.js";
import { MessageBus } from "../server/index.js";
import { expectRoundTrip, hasPostgres, POSTGRES_URL, Recorder, uniqueName } from "./helpers/backends.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

/** What only the PostgreSQL backend has: schemas, URLs, connections that can be cut. */
const run = await hasPostgres();

const req = (channel: string, data: unknown): AppendRequest => ({
  channel,
  data,
  dataJson: JSON.stringify(data),
  maxBacklogSize: 100,
  maxBacklogAge: 3600,
  maxGlobalBacklogSize: 100,
});

const opened: PostgresBackend[] = [];
afterEach(async () => {
  const [first, ...peers] = opened.splice(0);
  await Promise.all(peers.map((b) => b.close()));
  if (first) await first.destroy().catch(() => {});
  await first?.close();
});

async function admin(sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

describe("PostgreSQL backend URL", () => {
  it("takes the schema from the URL and leaves the rest (application_name, …) to pg", () => {
    const { config, schema } = parsePostgresUrl("postgres://u@h:5433/db?schema=app_1&application_name=web");
    expect(schema).toBe("app_1");
    expect(config).toEqual({ connectionString: "postgres://u@h:5433/db?application_name=web", application_name: "web" });
    expect(new PostgresBackend({ url: "postgres://u@h/db?schema=s1" }).schema).toBe("s1");
    expect(new PostgresBackend({ url: "postgres://u@h/db" }).schema).toBe("cometbus");
    expect(() => new PostgresBackend({ url: 'postgres://u@h/db?schema=x";drop' })).toThrow(/^cometbus: bad PostgreSQL schema name/);
  });

  it("fails to start with a clear error when nothing answers, leaving nothing running", async () => {
    const port = await freePort();
    const b = new PostgresBackend({ url: `postgres://postgres@127.0.0.1:${port}/test`, onError: () => {} });
    await expect(b.start(new Recorder())).rejects.toThrow(/^cometbus: cannot start on PostgreSQL \(schema "cometbus"\): .*ECONNREFUSED/);
  });
});

describe("PostgreSQL group commit", () => {
  it("sends what queued during a batch as the next batch, in order; a failed batch fails each of its appends", async () => {
    const batches: string[][] = [];
    let release!: () => void;
    const b = new PublishBatcher(async (batch) => {
      batches.push(batch.map((r) => r.data as string));
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      if (batch.some((r) => r.data === "boom")) throw new Error("store down");
      return batch.map((r, i) => ({ epoch: "e", globalId: batches.length * 10 + i, messageId: i + 1 }));
    }, 3);
    const first = b.add(req("/g", "a"));
    const queued = ["b", "c", "d", "boom", "e"].map((x) => b.add(req("/g", x)).then((r) => r.globalId, (e: Error) => e.message));
    release();
    expect(await first).toEqual({ epoch: "e", globalId: 10, messageId: 1 });
    // At most 3 per batch: b c d together, then boom e together, failing together.
    expect(await Promise.all(queued)).toEqual([20, 21, 22, "store down", "store down"]);
    expect(batches).toEqual([["a"], ["b", "c", "d"], ["boom", "e"]]);
    // Nothing stuck: the next append goes out on its own.
    expect((await b.add(req("/g", "f"))).globalId).toBe(40);
  });
});

describe.runIf(run)("PostgreSQL backend", () => {
  it("gets over its connections being terminated: the next publish works and notifications come back", async () => {
    const app = uniqueName("app");
    const b = new PostgresBackend({ url: `${POSTGRES_URL}?application_name=${app}`, schema: uniqueName("cut"), onError: () => {} });
    opened.push(b);
    const events = new Recorder();
    await b.start(events);
    await b.append(req("/cut", 1));
    await events.count(1);
    const cut = await admin(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = '${app}'`);
    expect(cut.rows[0].n).toBeGreaterThanOrEqual(2); // the pool's and the LISTEN connection
    // The pool drops the dead connection: a publish may fail once while it finds out, then works.
    let m;
    for (let i = 0; i < 5 && !m; i++) m = await b.append(req("/cut", 2)).catch(() => undefined);
    expect(m && [m.global_id, m.message_id]).toEqual([2, 2]);
    await events.count(2);
    await b.append(req("/cut", 3));
    await events.count(3);
    expect(events.messages.map((x) => x.data)).toEqual([1, 2, 3]);
    await waitFor(async () => (await admin(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = '${app}' AND query LIKE 'LISTEN%'`)).rows[0].n === 1, "LISTEN again", 60_000);
  });

  it("is what a MessageBus gets from a postgres:// URL, its schema created on first use", async () => {
    const schema = uniqueName("bus");
    const bus = new MessageBus({ backend: `${POSTGRES_URL}?schema=${schema}`, onError: () => {} });
    try {
      await bus.ready();
      expect(bus.backend.kind).toBe("postgres");
      const tables = await admin(`SELECT table_name FROM information_schema.tables WHERE table_schema = '${schema}' ORDER BY 1`);
      expect(tables.rows.map((r) => r.table_name)).toEqual(["backlog", "channels", "global_backlog", "meta", "request_clients", "requests"]);
      await expectRoundTrip(bus);
    } finally {
      await bus.close();
      await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });
});
