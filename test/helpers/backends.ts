import { spawnSync } from "node:child_process";
import { connect } from "node:net";
import { randomBytes } from "node:crypto";
import type { Backend, BackendEvents, StoredMessage } from "../../server/core/backend.js";
import { MemoryBackend } from "../../server/backends/memory.js";
import { PostgresBackend } from "../../server/backends/postgres.js";
import { RedisBackend } from "../../server/backends/redis.js";
import { expect } from "vitest";
import type { MessageBus } from "../../server/bus.js";
import { waitFor } from "./wait.js";
import { requireService } from "./services.js";

export const REDIS_URL = process.env.COMETBUS_TEST_REDIS ?? "redis://127.0.0.1:6379/0";
export const POSTGRES_URL = process.env.COMETBUS_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";

/** Whether something accepts TCP connections on host:port (a quick check, not a protocol handshake). */
export function listening(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

export const hasRedis = async () =>
  requireService("Redis", await listening(6379), "apt-get install redis-server; redis-server on 127.0.0.1:6379");
/** Outage tests start private Redis servers they can kill. */
export const hasRedisServer = () =>
  requireService("redis-server", spawnSync("redis-server", ["--version"]).status === 0, "apt-get install redis-server");
export const hasPostgres = async () =>
  requireService("PostgreSQL", await listening(5432), "apt-get install postgresql; database `test` on 127.0.0.1:5432, user postgres");

/** A name nobody else uses: key prefix or schema of one test. */
export function uniqueName(tag: string): string {
  return `cbt_${tag}_${process.pid}_${randomBytes(4).toString("hex")}`;
}

/** Everything a backend told one process. */
export class Recorder implements BackendEvents {
  messages: StoredMessage[] = [];
  epochs: string[] = [];
  private waiters: (() => void)[] = [];

  message(m: StoredMessage): void {
    this.messages.push(m);
    this.wake();
  }
  epoch(e: string): void {
    this.epochs.push(e);
    this.wake();
  }
  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once `ok()` holds; rejects after `ms` (a safety net, not a timing assertion). */
  until(ok: () => boolean, what: string, ms = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (ok()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; have ${this.messages.length} messages, epochs ${this.epochs}`)), ms);
      check();
    });
  }
  count(n: number): Promise<void> {
    return this.until(() => this.messages.length >= n, `${n} messages`);
  }
}

/** One store, seen by any number of started backends ("processes"). */
export interface Store {
  kind: string;
  /** A backend on this store, started with a fresh recorder. */
  open(): Promise<{ backend: Backend; events: Recorder }>;
  /** Closes every backend opened and removes what the store holds. */
  dispose(): Promise<void>;
}

/**
 * The memory backend has one process by definition: "peers" share the instance and each gets
 * every event, which is what two processes on a shared store see.
 */
function memoryStore(): Store {
  const shared = new MemoryBackend();
  const recorders: Recorder[] = [];
  let started = false;
  return {
    kind: "memory",
    async open() {
      if (!started) {
        started = true;
        await shared.start({
          message: (m) => recorders.forEach((r) => r.message(m)),
          epoch: (e) => recorders.forEach((r) => r.epoch(e)),
        });
      }
      const events = new Recorder();
      recorders.push(events);
      return { backend: shared, events };
    },
    async dispose() {
      await shared.close();
    },
  };
}

function sharedStore<B extends Backend & { destroy(): Promise<void> }>(kind: string, make: () => B): Store {
  const opened: B[] = [];
  return {
    kind,
    async open() {
      const backend = make();
      opened.push(backend);
      const events = new Recorder();
      await backend.start(events);
      return { backend, events };
    },
    async dispose() {
      // Peers first: a peer still reading would recreate the epoch key the destroy removed.
      await Promise.all(opened.slice(1).map((b) => b.close()));
      if (opened[0]) await opened[0].destroy().catch(() => {});
      await opened[0]?.close();
    },
  };
}

/** A store on a Redis Cluster (test/helpers/redis-cluster.ts), `shards` shards under a fresh prefix. */
export function redisClusterStore(url: string, shards: number): Store {
  const prefix = uniqueName("rc") + ":";
  return sharedStore("redis-cluster", () => new RedisBackend({ url, prefix, shards, onError: () => {} }));
}

export const storeFactories: Record<string, () => Store> = {
  memory: memoryStore,
  redis: () => {
    const prefix = uniqueName("r") + ":";
    return sharedStore("redis", () => new RedisBackend({ url: REDIS_URL, prefix, onError: () => {} }));
  },
  postgres: () => {
    const schema = uniqueName("p");
    return sharedStore("postgres", () => new PostgresBackend({ url: POSTGRES_URL, schema, poolSize: 4, onError: () => {} }));
  },
};

/** A bus on a fresh store: a server-side subscriber sees a publish, and the backlog holds it, ids 1/1. */
export async function expectRoundTrip(bus: MessageBus): Promise<void> {
  const got: unknown[] = [];
  bus.subscribe("/bus", (m) => got.push(m.data));
  expect(await bus.publish("/bus", { hi: 1 })).toEqual({ globalId: 1, messageId: 1 });
  await waitFor(() => got.length === 1, "the server-side subscriber", 60_000);
  expect(got).toEqual([{ hi: 1 }]);
  expect(await bus.backlog("/bus")).toEqual([{ global_id: 1, message_id: 1, channel: "/bus", data: { hi: 1 } }]);
}
