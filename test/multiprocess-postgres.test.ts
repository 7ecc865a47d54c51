import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { hasPostgres, POSTGRES_URL, uniqueName } from "./helpers/backends.js";
import { Cluster, PROCESSES } from "./helpers/cluster.js";
import { OUTAGE, publishAndVerify, untilAcks, untilRejections, verifyAfterOutage } from "./helpers/scenarios.js";

/** Three `cometbus serve` processes on one PostgreSQL (README: Backends and scale-out). */
const run = await hasPostgres();

let cluster: Cluster | undefined;
const cleanups: string[][] = [];

async function admin(...statements: string[]): Promise<pg.QueryResult[]> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    const out = [];
    for (const s of statements) out.push(await c.query(s));
    return out;
  } finally {
    await c.end();
  }
}

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  for (const c of cleanups.splice(0)) await admin(...c);
});

describe.runIf(run)("three processes on one PostgreSQL", () => {
  it("deliver 3,000 messages from publishers in every process to every subscriber, once, in order, same ids everywhere", async () => {
    const schema = uniqueName("mp");
    cleanups.push([`DROP SCHEMA IF EXISTS "${schema}" CASCADE`]);
    cluster = new Cluster(`${POSTGRES_URL}?schema=${schema}`);
    await cluster.start();
    await publishAndVerify(cluster);
  }, 120_000);

  it("survive their connections being terminated and logins refused mid-run: publishes reject meanwhile, every acknowledged message arrives once", async () => {
    // A role of its own: refusing its logins is an outage for these processes only, not for other suites.
    const role = uniqueName("role");
    const schema = uniqueName("mpo");
    const app = uniqueName("app");
    await admin(`CREATE ROLE "${role}" LOGIN`, `GRANT CREATE ON DATABASE test TO "${role}"`);
    cleanups.push([
      `DROP SCHEMA IF EXISTS "${schema}" CASCADE`,
      `REVOKE CREATE ON DATABASE test FROM "${role}"`,
      `DROP ROLE IF EXISTS "${role}"`,
    ]);
    const url = new URL(POSTGRES_URL);
    url.username = role;
    url.searchParams.set("schema", schema);
    url.searchParams.set("application_name", app);
    cluster = new Cluster(url.toString());
    await cluster.start();
    const terminate = `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = '${app}'`;

    let stop = false;
    const run = cluster.publishUntil(() => stop, OUTAGE.concurrency, OUTAGE.delayMs);
    await untilAcks(run, OUTAGE.acksBefore, "before the outage");
    // Every connection cut at once: publishes and reads in flight fail, pools and LISTEN reconnect.
    const [cut] = await admin(terminate);
    // Each process holds its LISTEN connection and at least one pooled one.
    expect(cut.rows[0].n).toBeGreaterThanOrEqual(2 * PROCESSES);
    await untilAcks(run, OUTAGE.acksBefore + OUTAGE.acksAfter, "after the cut");
    // Then down for a while: nothing can connect.
    await admin(`ALTER ROLE "${role}" NOLOGIN`, terminate);
    const before = run.rejections.length;
    await untilRejections(run, before + OUTAGE.rejectionsDuring, "during the outage");
    const acksDuringOutage = run.acks.length;
    await admin(`ALTER ROLE "${role}" LOGIN`);
    await untilAcks(run, acksDuringOutage + OUTAGE.acksAfter, "after recovery");
    stop = true;
    await run.done;
    console.log(`postgres outage: ${run.acks.length} acknowledged, ${run.rejections.length} rejected, reconnects ${cluster.subs.map((s) => s.reconnects)}`);

    await verifyAfterOutage(cluster, run, "PostgreSQL");
  }, 120_000);
});
