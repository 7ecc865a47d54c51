/**
 * Three `cometbus serve` processes on a Redis Cluster of 3 masters and 3 replicas, channels on three
 * shards (README, "Redis Cluster"): every message once, in order per channel, same ids everywhere;
 * then a master killed mid-run, its replica promoted, publishes going on, and every acknowledged
 * message either delivered or its channel reset, nothing duplicated or reordered.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { shardOf, shardTags, slotOfTag } from "../server/backends/redis-shards.js";
import { uniqueName } from "./helpers/backends.js";
import { Cluster } from "./helpers/cluster.js";
import { deliveryProblems } from "./helpers/delivery.js";
import type { Ack, PublishRun } from "./helpers/publisher.js";
import type { RawSubscriber } from "./helpers/raw-subscribers.js";
import { hasRedisCluster, RedisCluster } from "./helpers/redis-cluster.js";
import { OUTAGE, publishAndVerify, untilAcks, untilDelivered } from "./helpers/scenarios.js";
import { waitFor } from "./helpers/wait.js";

const SHARDS = 3;
const redis = (await hasRedisCluster()) ? await RedisCluster.start() : undefined;
afterAll(() => redis?.stop());

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/**
 * No publish stored twice, and every acknowledged message is, for every subscriber of its channel, either where its ids say in
 * what the subscriber holds now, or in what it held before a reset of that channel, or the channel
 * was reset after the subscriber last had it (so the client was told). Each list, now and before,
 * counts 1, 2, 3… (nothing duplicated, nothing reordered).
 */
function unaccounted(subs: RawSubscriber[], acks: Ack[]): string[] {
  const problems: string[] = [];
  const same = (m: { global_id: number; data: unknown } | undefined, a: Ack) => m !== undefined && m.global_id === a.global_id && JSON.stringify(m.data) === JSON.stringify(a.data);
  for (const s of subs) {
    // Each earlier list runs without a hole from where its reset put the channel (0 for an epoch).
    for (const [ch, lists] of s.earlier) {
      lists.forEach((list, l) => {
        const from = s.earlierFrom.get(ch)![l];
        list.forEach((m, i) => m.message_id !== from + i + 1 && problems.push(`${s.name} ${ch}: earlier #${i} has id ${m.message_id} (from ${from})`));
      });
    }
    // Each publish has its own data: the same data twice is one publish stored twice (a retried script).
    for (const [ch, list] of s.received) {
      const seen = new Set<string>();
      for (const m of [...s.earlier.get(ch)!.flat(), ...list]) {
        const d = JSON.stringify(m.data);
        if (seen.has(d)) problems.push(`${s.name} ${ch}: ${d} twice`);
        seen.add(d);
      }
    }
    const reset = new Set(s.resets.flatMap((r) => r.channels));
    for (const a of acks) {
      if (!s.received.has(a.channel)) continue;
      if (same(s.received.get(a.channel)![a.message_id - 1], a)) continue;
      if (s.earlier.get(a.channel)!.some((list, l) => same(list[a.message_id - 1 - s.earlierFrom.get(a.channel)![l]], a))) continue;
      if (reset.has(a.channel)) continue;
      problems.push(`${s.name}: acknowledged ${JSON.stringify(a)} neither delivered nor reset`);
    }
  }
  return problems;
}

/** After a failover: refusals were 503s, and every acknowledged message is accounted for. */
async function verifyAfterFailover(cluster: Cluster, run: PublishRun): Promise<void> {
    for (const r of run.rejections) {
    expect(r.status).toBe(503);
    expect(r.error).toMatch(/^cometbus: Redis is unavailable, message not published: /);
  }
  const subs = cluster.subs;
  const resets = subs.flatMap((s) => s.resets);
  if (!resets.length) {
    // Nothing lost: every acknowledged message everywhere, once, in order.
    await untilDelivered(cluster, run);
    expect(deliveryProblems(subs, run.acks, false)).toEqual([]);
  } else {
    // The replica missed acknowledged writes: one new epoch for the cluster, every process told.
    const epoch = subs[0].epoch;
    await waitFor(() => subs.every((s) => s.epoch === epoch && s.resets.length > 0), "every subscriber in the new epoch", 30_000);
    // What was published since reaches every subscriber: the same lists everywhere, all accounted for.
    const settled = () => !deliveryProblems(subs, [], false).length && !unaccounted(subs, run.acks).length;
    await waitFor(settled, "the same messages at every subscriber, every acknowledged one accounted for", 30_000).catch(() => {});
    expect(deliveryProblems(subs, [], false)).toEqual([]);
  }
  expect(unaccounted(subs, run.acks)).toEqual([]);
  expect(cluster.crashed()).toEqual([]);
}

/** Publishes go on until `failover()` is over and the shard of `channel` takes publishes again; then stops. */
async function publishThrough(cluster: Cluster, channel: string, failover: (run: PublishRun) => Promise<void>): Promise<PublishRun> {
  let stop = false;
  const run = cluster.publishUntil(() => stop, OUTAGE.concurrency, OUTAGE.delayMs);
  await untilAcks(run, OUTAGE.acksBefore, "before the failover");
  await failover(run);
  await redis!.untilHealthy();
  const acksAtFailover = run.acks.length;
  // Publishes on every channel resume, the failed-over shard included.
  await untilAcks(run, acksAtFailover + OUTAGE.acksAfter, "after the failover");
  await waitFor(() => run.acks.slice(acksAtFailover).some((a) => a.channel === channel), `a publish on ${channel}, its shard failed over`, 30_000);
  stop = true;
  await run.done;
  console.log(`redis cluster failover: ${run.acks.length} acknowledged, ${run.rejections.length} rejected, resets ${cluster.subs.map((s) => s.resets.length)}`);
  return run;
}

/** The master serving the shard of `channel`. */
const masterOf = (channel: string) => redis!.ownerOf(slotOfTag(shardTags(SHARDS)[shardOf(channel, SHARDS)]));

describe.runIf(redis)(`three processes on a Redis Cluster, ${SHARDS} shards`, () => {
  it("deliver 3,000 messages across every shard to every subscriber, once, in order per channel, same ids everywhere", async () => {
    cluster = new Cluster(redis!.url(`prefix=${uniqueName("mpc")}:&shards=${SHARDS}`));
    expect(new Set(cluster.channels.map((c) => shardOf(c, SHARDS))).size).toBe(SHARDS);
    await cluster.start();
    await publishAndVerify(cluster, SHARDS);
  }, 120_000);

  // Each failover leaves its shard's new master without a replica, so each test takes another shard.
  it("survive a master killed mid-run: its replica takes over, publishes resume, nothing acknowledged is silently lost", async () => {
    cluster = new Cluster(redis!.url(`prefix=${uniqueName("fo")}:&shards=${SHARDS}`));
    await cluster.start();
    const channel = cluster.channels[0];
    const run = await publishThrough(cluster, channel, async () => {
      const master = await masterOf(channel);
      redis!.kill(master);
      await waitFor(async () => !(await redis!.masters()).some((m) => m.port === master), "the dead master marked failed", 30_000, 100);
    });
    await verifyAfterFailover(cluster, run);
  }, 180_000);

  it("tell every client when the promoted replica had missed acknowledged publishes: a new epoch, never a silent hole", async () => {
    cluster = new Cluster(redis!.url(`prefix=${uniqueName("lost")}:&shards=${SHARDS}`));
    await cluster.start();
    const channel = cluster.channels.find((c) => shardOf(c, SHARDS) !== shardOf(cluster!.channels[0], SHARDS))!;
    const run = await publishThrough(cluster, channel, async (run) => {
      const master = await masterOf(channel);
      const replica = await redis!.replicaOf(master);
      // The replica is paused and its link cut while its master goes on acknowledging; then the
      // master dies and the replica, back, is promoted without what it missed.
      redis!.pause(replica, true);
      await redis!.cutReplicas(master);
      const acked = run.acks.length;
      await waitFor(() => run.acks.slice(acked).filter((a) => a.channel === channel).length >= 5, `publishes on ${channel} the replica misses`, 30_000);
      redis!.kill(master);
      redis!.pause(replica, false);
      await waitFor(async () => (await redis!.masters()).some((m) => m.port === replica), "the replica promoted", 30_000, 100);
    });
    await verifyAfterFailover(cluster, run);
    expect(cluster.subs.every((s) => s.resets.length > 0)).toBe(true);
  }, 180_000);
});
