import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { hasRedis, listening, REDIS_URL, uniqueName } from "./helpers/backends.js";
import { allDelivered, Cluster, deliveryProblems, freePort, waitUntil } from "./helpers/cluster.js";

/** Three `cometbus serve` processes on one Redis (DESIGN §3 scale-out). */
const run = await hasRedis();

let cluster: Cluster | undefined;
let privateRedis: { child: ChildProcess; dir: string } | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (privateRedis) {
    privateRedis.child.kill("SIGKILL");
    rmSync(privateRedis.dir, { recursive: true, force: true });
    privateRedis = undefined;
  }
  for (const c of cleanups.splice(0)) await c().catch(() => {});
});

async function deleteKeys(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true });
  await r.connect();
  const keys = await r.keys(prefix + "*");
  if (keys.length) await r.del(...keys);
  await r.quit();
}

/** A private Redis that keeps every acknowledged write on disk (AOF, fsync always), so a restart loses nothing. */
async function startPrivateRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir],
    { stdio: "ignore" },
  );
  await waitUntil(
    () => child.exitCode === null && listening(port),
    () => `redis-server on port ${port} (exit code ${child.exitCode})`,
    10_000,
  );
  return child;
}

describe.runIf(run)("three processes on one Redis", () => {
  it("deliver 3,000 messages from publishers in every process to every subscriber, once, in order, same ids everywhere", async () => {
    const prefix = uniqueName("mp") + ":";
    cleanups.push(() => deleteKeys(REDIS_URL, prefix));
    cluster = new Cluster(`${REDIS_URL}?prefix=${prefix}`);
    await cluster.start(3);
    const { acks, rejections } = await cluster.publish(1000, 8);
    expect(rejections).toEqual([]);
    expect(acks).toHaveLength(3000);
    for (const ch of cluster.channels) {
      const ids = acks.filter((a) => a.channel === ch).map((a) => a.message_id).sort((x, y) => x - y);
      expect(ids).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    }
    expect(acks.map((a) => a.global_id).sort((x, y) => x - y)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    const subs = cluster.subs;
    await waitUntil(() => allDelivered(subs, acks), () => subs.map((s) => `${s.name}=${s.count()}`).join(" "));
    await new Promise((r) => setTimeout(r, 200)); // anything extra (a duplicate) would show up now
    expect(deliveryProblems(subs, acks, true)).toEqual([]);
    expect(subs.map((s) => s.count())).toEqual([3000, 2100, 2100, 3000, 2100, 2100, 3000, 2100, 2100]);
    expect(subs.flatMap((s) => s.resets)).toEqual([]);
    expect(cluster.crashed()).toEqual([]);
  }, 120_000);

  it("survive a Redis restart mid-run: publishes reject while it is down, every acknowledged message arrives once", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "cometbus-redis-"));
    privateRedis = { child: await startPrivateRedis(port, dir), dir };
    cluster = new Cluster(`redis://127.0.0.1:${port}/0?prefix=outage:`);
    await cluster.start(3);

    let stop = false;
    const run = cluster.publishUntil(() => stop, 4, 5);
    await waitUntil(() => run.acks.length >= 300, () => `${run.acks.length} acks before the outage`);
    privateRedis.child.kill("SIGKILL");
    await waitUntil(() => run.rejections.length >= 30, () => `${run.rejections.length} rejections during the outage`);
    const acksDuringOutage = run.acks.length;
    privateRedis.child = await startPrivateRedis(port, dir);
    await waitUntil(() => run.acks.length >= acksDuringOutage + 300, () => `${run.acks.length} acks after recovery`);
    stop = true;
    await run.done;
    console.log(`redis outage: ${run.acks.length} acknowledged, ${run.rejections.length} rejected, reconnects ${cluster.subs.map((s) => s.reconnects)}`);

    for (const r of run.rejections) {
      expect(r.status).toBe(503);
      expect(r.error).toMatch(/^cometbus: Redis is unavailable, message not published: /);
    }
    const subs = cluster.subs;
    await waitUntil(() => allDelivered(subs, run.acks), () => subs.map((s) => `${s.name}=${s.count()}`).join(" "));
    await new Promise((r) => setTimeout(r, 200));
    expect(deliveryProblems(subs, run.acks, false)).toEqual([]);
    expect(subs.flatMap((s) => s.resets)).toEqual([]);
    expect(cluster.crashed()).toEqual([]);
  }, 120_000);
});
