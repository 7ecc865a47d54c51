import { type ChildProcess, spawn } from "node:child_process";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import type { AppendRequest } from "../server/core/backend.js";
import { RedisBackend } from "../server/backends/redis.js";
import { MessageBus } from "../server/index.js";
import { expectRoundTrip, hasRedis, hasRedisServer, listening, Recorder, REDIS_URL, uniqueName } from "./helpers/backends.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";

/** What only the Redis backend has: a store that can lose everything, URLs with a prefix. */
const run = (await hasRedis()) && hasRedisServer();

const req = (channel: string, data: unknown): AppendRequest => ({
  channel,
  data,
  dataJson: JSON.stringify(data),
  maxBacklogSize: 100,
  maxBacklogAge: 3600,
  maxGlobalBacklogSize: 100,
});

const opened: RedisBackend[] = [];
let redis: ChildProcess | undefined;
let proxy: Server | undefined;

afterEach(async () => {
  proxy?.close();
  proxy = undefined;
  const [first, ...peers] = opened.splice(0);
  await Promise.all(peers.map((b) => b.close()));
  if (first) await first.destroy().catch(() => {});
  await first?.close();
  redis?.kill("SIGKILL");
  redis = undefined;
});

async function open(url: string, prefix: string): Promise<{ b: RedisBackend; events: Recorder }> {
  const b = new RedisBackend({ url, prefix, safetyPollMs: 100, onError: () => {} });
  opened.push(b);
  const events = new Recorder();
  await b.start(events);
  return { b, events };
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  await waitFor(() => child.exitCode === null && listening(port), () => `redis-server on ${port}`, 10_000);
  return child;
}

/**
 * A TCP proxy that can stop passing bytes without closing anything: what a network partition looks
 * like to both ends. Held bytes go through on `heal()`.
 */
async function partitionableProxy(targetPort: number): Promise<{ port: number; partition(): void; heal(): void }> {
  let cut = false;
  const held: (() => void)[] = [];
  const pipe = (from: Socket, to: Socket) =>
    from.on("data", (d) => {
      if (cut) held.push(() => to.write(d));
      else to.write(d);
    });
  const server = createServer((client) => {
    const upstream = createConnection({ port: targetPort, host: "127.0.0.1" });
    pipe(client, upstream);
    pipe(upstream, client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  proxy = server;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    partition: () => (cut = true),
    heal: () => {
      cut = false;
      for (const f of held.splice(0)) f();
    },
  };
}

describe("Redis backend URL", () => {
  it("takes the key prefix from the URL and leaves the rest to ioredis", () => {
    expect(new RedisBackend({ url: "redis://127.0.0.1:6379/3?prefix=app1:" }).prefix).toBe("app1:");
    expect(new RedisBackend({ url: "redis://127.0.0.1:6379/3" }).prefix).toBe("cometbus:");
    expect(new RedisBackend({ url: "redis://127.0.0.1:6379/3?prefix=a:", prefix: "b:" }).prefix).toBe("b:");
  });

  it("fails to start with a clear error when nothing answers, leaving nothing running", async () => {
    const port = await freePort();
    const b = new RedisBackend({ url: `redis://127.0.0.1:${port}`, onError: () => {} });
    await expect(b.start(new Recorder())).rejects.toThrow(/^cometbus: cannot connect to Redis: .*ECONNREFUSED/);
    await b.close();
  });
});

describe.runIf(run)("Redis backend", () => {
  it("starts a new epoch in every process when the store loses its keys (FLUSHALL), then ids restart", async () => {
    const prefix = uniqueName("flush") + ":";
    const a = await open(REDIS_URL, prefix);
    const c = await open(REDIS_URL, prefix);
    await a.b.append(req("/f", 1));
    await a.b.append(req("/f", 2));
    await a.events.count(2);
    await c.events.count(2);
    const old = a.b.epoch;
    expect(c.b.epoch).toBe(old);
    // What FLUSHALL does to this bus, without touching other suites' keys.
    const admin = new Redis(REDIS_URL);
    await admin.del(...(await admin.keys(prefix + "*")));
    await admin.quit();
    // Nobody publishes: each process notices on its own (the safety read) and says so once.
    await a.events.until(() => a.events.epochs.length === 1, "a's epoch event");
    await c.events.until(() => c.events.epochs.length === 1, "c's epoch event");
    expect(a.events.epochs).toEqual([a.b.epoch]);
    expect(c.events.epochs).toEqual([a.b.epoch]);
    expect(a.b.epoch).not.toBe(old);
    const m = await c.b.append(req("/f", 3));
    expect([m.global_id, m.message_id]).toEqual([1, 1]);
    await a.events.count(3);
    await c.events.count(3);
    expect(a.events.messages.map((x) => [x.global_id, x.message_id, x.data])).toEqual([[1, 1, 1], [2, 2, 2], [1, 1, 3]]);
    expect(c.events.messages.map((x) => [x.global_id, x.message_id, x.data])).toEqual([[1, 1, 1], [2, 2, 2], [1, 1, 3]]);
    expect(await a.b.backlog("/f", 0)).toHaveLength(1);
  });

  it("rejects publishes and reads at once while Redis is down, and carries on in a new epoch once it is back", async () => {
    const port = await freePort();
    redis = await startRedis(port);
    const { b, events } = await open(`redis://127.0.0.1:${port}`, "down:");
    await b.append(req("/d", "before"));
    await events.count(1);
    const old = b.epoch;
    redis.kill("SIGKILL");
    await waitFor(async () => !(await listening(port)), "redis to go away", 60_000);
    await expect(b.append(req("/d", "during"))).rejects.toThrow(/^cometbus: Redis is unavailable, message not published: /);
    await expect(b.backlog("/d", 0)).rejects.toThrow(/^cometbus: Redis is unavailable, try again later: /);
    await expect(b.snapshot(["/d"])).rejects.toThrow(/^cometbus: Redis is unavailable, try again later: /);
    redis = await startRedis(port);
    // Restarted without persistence: everything is gone, so positions are void and the process is told.
    await events.until(() => events.epochs.length === 1, "the new epoch");
    expect(b.epoch).not.toBe(old);
    const m = await b.append(req("/d", "after"));
    expect([m.global_id, m.message_id]).toEqual([1, 1]);
    await events.count(2);
    expect(events.messages.map((x) => x.data)).toEqual(["before", "after"]);
  });

  it("rejects a publish that Redis does not answer (a partition) instead of holding it, and goes on once it heals", async () => {
    const p = await partitionableProxy(6379);
    const prefix = uniqueName("part") + ":";
    const b = new RedisBackend({ url: `redis://127.0.0.1:${p.port}/0`, prefix, redis: { commandTimeout: 300 }, safetyPollMs: 100, onError: () => {} });
    opened.push(b);
    const events = new Recorder();
    await b.start(events);
    await b.append(req("/p", "before"));
    await events.count(1);
    p.partition();
    await expect(b.append(req("/p", "unanswered"))).rejects.toThrow(/^cometbus: Redis is unavailable, message not published: Command timed out/);
    p.heal();
    const after = await b.append(req("/p", "after"));
    await events.until(() => events.messages.some((m) => m.data === "after"), "the message after the partition");
    // The unanswered publish reached Redis once the partition healed: stored and delivered, once, in
    // order. A rejected publish means "not known to be stored", never "stored twice".
    expect(events.messages.map((m) => [m.message_id, m.data])).toEqual([[1, "before"], [2, "unanswered"], [3, "after"]]);
    expect(after.message_id).toBe(3);
  });

  it("is what a MessageBus gets from a redis:// URL", async () => {
    const prefix = uniqueName("bus") + ":";
    const bus = new MessageBus({ backend: `${REDIS_URL}?prefix=${prefix}`, onError: () => {} });
    try {
      await bus.ready();
      expect(bus.backend.kind).toBe("redis");
      await expectRoundTrip(bus);
    } finally {
      await bus.close();
      const cleanup = new RedisBackend({ url: REDIS_URL, prefix });
      await cleanup.destroy();
      await cleanup.close();
    }
  });
});
