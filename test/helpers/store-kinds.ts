import { afterAll } from "vitest";
import { hasPostgres, hasRedis, redisClusterStore, storeFactories } from "./backends.js";
import { hasRedisCluster, RedisCluster } from "./redis-cluster.js";

/**
 * The stores a backend suite runs on: memory, then Redis and PostgreSQL where they answer, then a Redis
 * Cluster of `shards` shards where redis-server can start one (for this file, stopped after it).
 */
export async function storeKinds(shards: number): Promise<string[]> {
  const kinds = ["memory"];
  if (await hasRedis()) kinds.push("redis");
  if (await hasPostgres()) kinds.push("postgres");
  const cluster = (await hasRedisCluster()) ? await RedisCluster.start() : undefined;
  afterAll(() => cluster?.stop());
  if (cluster) {
    storeFactories["redis-cluster"] = () => redisClusterStore(cluster.url(), shards);
    kinds.push("redis-cluster");
  }
  return kinds;
}
