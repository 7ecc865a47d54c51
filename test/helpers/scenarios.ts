/** The runs both multi-process suites make (Redis and PostgreSQL), and what they must show. */
import { expect } from "vitest";
import { CHANNEL_COUNT, type Cluster, LONG_POLL_CHANNELS, SSE_CHANNELS } from "./cluster.js";
import { allDelivered, counts, deliveryProblems } from "./delivery.js";
import type { PublishRun } from "./publisher.js";
import { pause, waitFor } from "./wait.js";

/**
 * Messages each process publishes, and how many at once: enough that publishes from every process
 * race each other on every channel for a few seconds, several in flight per process so a process's
 * own publishes race too, while the whole run stays around ten seconds on two cores.
 */
export const PER_PROCESS = 1000;
export const PUBLISH_CONCURRENCY = 8;

/**
 * The outage runs: every process publishes a steady trickle (a few at a time, a pause after each) so
 * the outage lands mid-run. The counts say the run was live before, that the outage was real
 * (publishes were tried and refused, not a blip between two), and that it recovered and went on.
 */
export const OUTAGE = {
  concurrency: 4,
  delayMs: 5,
  acksBefore: 300,
  rejectionsDuring: 30,
  acksAfter: 300,
};

/**
 * After the last expected message: a duplicate already on its way over loopback arrives within
 * this, before the exact counts are checked.
 */
const SETTLE_MS = 200;

/**
 * Waits in a cluster run (publishes counted, every message delivered): over loopback, but through a
 * shared store and three busy processes on two cores. A safety net, never a timing assertion.
 */
export const CLUSTER_WAIT_MS = 60_000;

/** Waits until the run has had `n` publishes acknowledged in all. */
export function untilAcks(run: PublishRun, n: number, when: string): Promise<void> {
  return waitFor(() => run.acks.length >= n, () => `${n} acks in all ${when} (have ${run.acks.length})`, CLUSTER_WAIT_MS);
}

/** Waits until the run has had `n` publishes refused in all. */
export function untilRejections(run: PublishRun, n: number, when: string): Promise<void> {
  return waitFor(() => run.rejections.length >= n, () => `${n} rejections in all ${when} (have ${run.rejections.length})`, CLUSTER_WAIT_MS);
}

/** Waits until every subscriber holds every acknowledged message of its channels, then settles. */
export async function untilDelivered(cluster: Cluster, run: Pick<PublishRun, "acks">): Promise<void> {
  const subs = cluster.subs;
  await waitFor(() => allDelivered(subs, run.acks), () => `every acknowledged message at every subscriber (${counts(subs)})`, CLUSTER_WAIT_MS);
  await pause(SETTLE_MS);
}

/**
 * Every process publishes PER_PROCESS messages to the cluster's channels: every channel's ids 1..n and
 * the global ids 1..total acknowledged (on a Redis Cluster of `shards` shards, 1..n in each shard's
 * own sequence: global id = n·shards + shard), and every subscriber gets every message of its
 * channels once, in order, same ids.
 */
export async function publishAndVerify(cluster: Cluster, shards = 1): Promise<void> {
  const total = cluster.servers.length * PER_PROCESS;
  const perChannel = total / CHANNEL_COUNT;
  const { acks, rejections } = await cluster.publish(PER_PROCESS, PUBLISH_CONCURRENCY);
  expect(rejections).toEqual([]);
  expect(acks).toHaveLength(total);
  for (const ch of cluster.channels) {
    const ids = acks.filter((a) => a.channel === ch).map((a) => a.message_id).sort((x, y) => x - y);
    expect(ids).toEqual(Array.from({ length: perChannel }, (_, i) => i + 1));
  }
  for (let shard = 0; shard < shards; shard++) {
    const own = acks.filter((a) => a.global_id % shards === shard).map((a) => (a.global_id - shard) / shards).sort((x, y) => x - y);
    expect(own).toEqual(Array.from({ length: own.length }, (_, i) => i + 1));
  }
  if (shards > 1) expect(new Set(acks.map((a) => a.global_id % shards)).size).toBe(shards);
  const subs = cluster.subs;
  await untilDelivered(cluster, { acks });
  expect(deliveryProblems(subs, acks, true)).toEqual([]);
  // WebSocket, SSE, long-poll on each process (subscribeAll's order and channels).
  const perProcess = [CHANNEL_COUNT, SSE_CHANNELS, LONG_POLL_CHANNELS].map((n) => n * perChannel);
  expect(subs.map((s) => s.count())).toEqual(cluster.servers.flatMap(() => perProcess));
  expect(subs.flatMap((s) => s.resets)).toEqual([]);
  expect(cluster.crashed()).toEqual([]);
}

/**
 * After an outage of the shared store: every publish refused meanwhile was a 503 naming the store,
 * and every acknowledged message reached every subscriber of its channel once, in order, with no
 * reset and no crashed process.
 */
export async function verifyAfterOutage(cluster: Cluster, run: PublishRun, store: "Redis" | "PostgreSQL"): Promise<void> {
  for (const r of run.rejections) {
    expect(r.status).toBe(503);
    expect(r.error).toMatch(new RegExp(`^cometbus: ${store} is unavailable, message not published: `));
  }
  const subs = cluster.subs;
  await untilDelivered(cluster, run);
  expect(deliveryProblems(subs, run.acks, false)).toEqual([]);
  expect(subs.flatMap((s) => s.resets)).toEqual([]);
  expect(cluster.crashed()).toEqual([]);
}
