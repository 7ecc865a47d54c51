import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { hasRedis, hasRedisServer, listening, REDIS_URL, uniqueName } from "./helpers/backends.js";
import { Cluster } from "./helpers/cluster.js";
import { deliveryProblems } from "./helpers/delivery.js";
import { freePort } from "./helpers/ports.js";
import type { Ack } from "./helpers/publisher.js";
import type { Received } from "./helpers/raw-subscribers.js";
import { OUTAGE, publishAndVerify, untilAcks, untilDelivered, untilRejections, verifyAfterOutage } from "./helpers/scenarios.js";
import { waitFor } from "./helpers/wait.js";

/** Three `cometbus serve` processes on one Redis (README: Backends and scale-out). */
const run = (await hasRedis()) && hasRedisServer();

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

/**
 * A private Redis. `durable`: every acknowledged write is on disk (AOF, fsync always), so a restart
 * loses nothing; otherwise a restart loses everything (a new epoch).
 */
async function startPrivateRedis(port: number, dir: string, durable = true): Promise<ChildProcess> {
  const persistence = durable ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"];
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence, "--dir", dir], {
    stdio: "ignore",
  });
  await waitFor(
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
    await cluster.start();
    await publishAndVerify(cluster);
  }, 120_000);

  it("survive a Redis restart mid-run: publishes reject while it is down, every acknowledged message arrives once", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "cometbus-redis-"));
    privateRedis = { child: await startPrivateRedis(port, dir), dir };
    cluster = new Cluster(`redis://127.0.0.1:${port}/0?prefix=outage:`);
    await cluster.start();

    let stop = false;
    const run = cluster.publishUntil(() => stop, OUTAGE.concurrency, OUTAGE.delayMs);
    await untilAcks(run, OUTAGE.acksBefore, "before the outage");
    privateRedis.child.kill("SIGKILL");
    await untilRejections(run, OUTAGE.rejectionsDuring, "during the outage");
    const acksDuringOutage = run.acks.length;
    privateRedis.child = await startPrivateRedis(port, dir);
    await untilAcks(run, acksDuringOutage + OUTAGE.acksAfter, "after recovery");
    stop = true;
    await run.done;
    console.log(`redis outage: ${run.acks.length} acknowledged, ${run.rejections.length} rejected, reconnects ${cluster.subs.map((s) => s.reconnects)}`);

    await verifyAfterOutage(cluster, run, "Redis");
  }, 120_000);

  it("start over together when Redis restarts empty: every subscriber is told, then gets everything published since, once, in order", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "cometbus-redis-"));
    privateRedis = { child: await startPrivateRedis(port, dir, false), dir };
    cluster = new Cluster(`redis://127.0.0.1:${port}/0?prefix=empty:`);
    await cluster.start();
    const subs = cluster.subs;
    const firstEpoch = subs[0].epoch;
    expect(subs.map((s) => s.epoch)).toEqual(subs.map(() => firstEpoch));

    let stop = false;
    const run = cluster.publishUntil(() => stop, OUTAGE.concurrency, OUTAGE.delayMs);
    await untilAcks(run, OUTAGE.acksBefore, "before the outage");
    privateRedis.child.kill("SIGKILL");
    await untilRejections(run, OUTAGE.rejectionsDuring, "during the outage");
    // Redis is gone, so no acknowledgement from before can still be on its way.
    const oldAcks = run.acks.slice();
    privateRedis.child = await startPrivateRedis(port, dir, false);
    await untilAcks(run, oldAcks.length + OUTAGE.acksAfter, "after recovery");
    stop = true;
    await run.done;
    const newAcks = run.acks.slice(oldAcks.length);

    await untilDelivered(cluster, { acks: newAcks });
    // The new epoch: exactly what was acknowledged since, on every process and transport.
    expect(deliveryProblems(subs, newAcks, false)).toEqual([]);
    const epoch = subs[0].epoch;
    expect(epoch).not.toBe(firstEpoch);
    expect(subs.map((s) => s.epoch)).toEqual(subs.map(() => epoch));
    for (const s of subs) expect(s.resets.length).toBeGreaterThanOrEqual(1);
    // The old epoch: what each subscriber got before is in order, once, and the same everywhere;
    // what Redis lost before every process read it is gone, and the reset said so.
    const old = new Map<string, Map<number, string>>();
    for (const a of oldAcks) {
      if (!old.has(a.channel)) old.set(a.channel, new Map());
      old.get(a.channel)!.set(a.message_id, JSON.stringify({ g: a.global_id, d: a.data }));
    }
    const problems: string[] = [];
    for (const s of subs) {
      for (const [ch, lists] of s.earlier) {
        if (lists.length > 1) problems.push(`${s.name} ${ch}: ${lists.length} earlier epochs`);
        for (const list of lists as Received[][]) {
          list.forEach((m, i) => {
            if (m.message_id !== i + 1) problems.push(`${s.name} ${ch}: #${i} has id ${m.message_id}`);
            const acked = old.get(ch)?.get(m.message_id);
            const got = JSON.stringify({ g: m.global_id, d: m.data });
            if (acked === undefined) {
              if (!old.get(ch)?.size || m.message_id <= Math.max(...old.get(ch)!.keys())) problems.push(`${s.name} ${ch}: ${got} never acknowledged`);
            } else if (acked !== got) problems.push(`${s.name} ${ch}: ${got}, acknowledged ${acked}`);
          });
        }
      }
    }
    expect(problems).toEqual([]);
    expect(oldAcks.length).toBeGreaterThanOrEqual(OUTAGE.acksBefore);
    expect(newAcks satisfies Ack[]).not.toHaveLength(0);
    expect(cluster.crashed()).toEqual([]);
  }, 120_000);
});
