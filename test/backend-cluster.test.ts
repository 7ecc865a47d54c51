/**
 * The Redis backend on a real Redis Cluster with several shards (README, "Redis Cluster"): what the
 * contract suite cannot show with one global sequence. Ids stay contiguous per channel and per
 * shard, every process sees every message once in the same per-channel order, the shards sit on
 * different masters, and a shard that starts over or goes back in time (a failover that lost
 * writes, simulated exactly here) starts one new epoch for the cluster, told once to every process.
 */
import fc from "fast-check";
import { Cluster } from "ioredis";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { AppendRequest, Backend, StoredMessage } from "../server/core/backend.js";
import type { RedisBackend } from "../server/backends/redis.js";
import { localAfter, newer, nextEpoch, parseClusterUrl, shardOf, shardTags, slotOfTag, wireGlobalId } from "../server/backends/redis-shards.js";
import { randomEpoch } from "../server/core/backend.js";
import { type Recorder, redisClusterStore, type Store } from "./helpers/backends.js";
import { hasRedisCluster, RedisCluster } from "./helpers/redis-cluster.js";

const SHARDS = 3;

function req(channel: string, data: unknown): AppendRequest {
  return { channel, data, dataJson: JSON.stringify(data), maxBacklogSize: 1000, maxBacklogAge: 3600, maxGlobalBacklogSize: 5000 };
}

describe("shard arithmetic", () => {
  it("puts shard i's tag in the middle of the i-th slot range, every tag on its own slot", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), (n) => {
        const slots = shardTags(n).map(slotOfTag);
        expect(new Set(slots).size).toBe(n);
        slots.forEach((s, i) => {
          expect(s).toBeGreaterThanOrEqual(Math.floor((i * 16384) / n));
          expect(s).toBeLessThan(Math.ceil(((i + 1) * 16384) / n));
        });
      }),
      { numRuns: 30 },
    );
  });

  it("maps wire global ids back to a shard's own sequence exactly (localAfter)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.nat(), fc.integer({ min: 1, max: 2 ** 40 }), fc.nat(2 ** 45), (count, s0, local, after) => {
        const shard = s0 % count;
        expect(wireGlobalId(local, shard, count) > after).toBe(local > localAfter(after, shard, count));
      }),
    );
  });

  it("makes every new epoch newer than the one before, valid on the wire, and newer than any older-style epoch", () => {
    const epoch = fc.stringMatching(/^[0-9a-z]{1,64}$/);
    fc.assert(
      fc.property(epoch, (after) => {
        const next = nextEpoch(after);
        expect(next).toMatch(/^[0-9a-z]{1,64}$/);
        if (after.length <= 60) expect(newer(next, after)).toBe(true);
        expect(newer(after, after)).toBe(false);
      }),
    );
    for (let i = 0; i < 50; i++) expect(newer(nextEpoch(), randomEpoch())).toBe(true);
  });

  it("hashes any channel to a shard in range, the same one every time", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.integer({ min: 1, max: 1024 }), (ch, n) => {
        const s = shardOf(ch, n);
        expect(Number.isInteger(s) && s >= 0 && s < n).toBe(true);
        expect(shardOf(ch, n)).toBe(s);
      }),
    );
  });

  it("parses cluster URLs with any list of nodes, and refuses anything else with an Error", () => {
    const node = fc.record({ host: fc.oneof(fc.ipV4(), fc.domain()), port: fc.integer({ min: 1, max: 65535 }) });
    fc.assert(
      fc.property(fc.array(node, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 1024 }), (nodes, shards) => {
        const url = `redis+cluster://u:p%40ss@${nodes.map((n) => `${n.host}:${n.port}`).join(",")}/?prefix=x:&shards=${shards}`;
        expect(parseClusterUrl(url)).toEqual({ nodes, username: "u", password: "p@ss", tls: false, prefix: "x:", shards });
      }),
    );
    // Found by the property below: a lone % in the credentials.
    expect(() => parseClusterUrl("redis+cluster://%zz@h:1")).toThrow(/^cometbus: /);
    fc.assert(
      fc.property(fc.string(), (junk) => {
        try {
          parseClusterUrl(`redis+cluster://${junk}`);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          expect((e as Error).message).toMatch(/^cometbus: /);
        }
      }),
    );
  });
});

const cluster = (await hasRedisCluster()) ? await RedisCluster.start() : undefined;
afterAll(() => cluster?.stop());

describe.runIf(cluster)(`a Redis Cluster, ${SHARDS} shards`, () => {
  let store: Store | undefined;
  let raw: Cluster | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
    raw?.disconnect();
    raw = undefined;
  });

  async function two(): Promise<[{ backend: RedisBackend; events: Recorder }, { backend: RedisBackend; events: Recorder }]> {
    store = redisClusterStore(cluster!.url(), SHARDS);
    const a = await store.open();
    const b = await store.open();
    return [a as { backend: RedisBackend; events: Recorder }, b as { backend: RedisBackend; events: Recorder }];
  }

  /** A script on one shard's node, as an operator's or a failover's change would be. */
  async function onShard(b: RedisBackend, index: number, script: string, ...args: string[]): Promise<unknown> {
    raw ??= new Cluster(parseClusterUrl(cluster!.url()).nodes);
    const [epoch, gid, ids, global] = b.shards[index].keys;
    return raw.eval(script, 4, epoch, gid, ids, global, b.shards[index].prefix, ...args);
  }

  const channels = Array.from({ length: 12 }, (_, i) => `/k${i}`);
  const shardsOfChannels = () => new Set(channels.map((c) => shardOf(c, SHARDS)));

  it("puts each shard on its own master", async () => {
    const [{ backend }] = await two();
    const owners = await Promise.all(backend.shards.map((s) => cluster!.ownerOf(slotOfTag(/\{(.*)\}/.exec(s.prefix)![1]))));
    expect(new Set(owners).size).toBe(SHARDS);
    expect(shardsOfChannels().size).toBe(SHARDS);
  });

  it("keeps ids contiguous per channel and per shard under concurrent publishers, every message once everywhere", async () => {
    const [a, b] = await two();
    const n = 240;
    const publish = (be: Backend, who: string) => Promise.all(Array.from({ length: n }, (_, i) => be.append(req(channels[i % channels.length], `${who}${i}`))));
    const all = (await Promise.all([publish(a.backend, "a"), publish(b.backend, "b")])).flat();
    for (const ch of channels) {
      expect(all.filter((m) => m.channel === ch).map((m) => m.message_id).sort((x, y) => x - y)).toEqual(Array.from({ length: (2 * n) / channels.length }, (_, i) => i + 1));
    }
    // Each shard counts 1, 2, 3… in its own sequence; the wire ids are unique across shards.
    for (let s = 0; s < SHARDS; s++) {
      const locals = all.filter((m) => m.global_id % SHARDS === s).map((m) => (m.global_id - s) / SHARDS).sort((x, y) => x - y);
      expect(locals).toEqual(Array.from({ length: locals.length }, (_, i) => i + 1));
      expect(all.filter((m) => m.global_id % SHARDS === s).every((m) => shardOf(m.channel, SHARDS) === s)).toBe(true);
    }
    await a.events.count(2 * n);
    await b.events.count(2 * n);
    const key = (m: StoredMessage) => `${m.global_id}:${m.channel}:${m.message_id}:${m.data}`;
    const perChannel = (ms: StoredMessage[]) => channels.map((ch) => ms.filter((m) => m.channel === ch).map(key));
    expect(perChannel(a.events.messages)).toEqual(perChannel(b.events.messages));
    expect(new Set(a.events.messages.map(key))).toEqual(new Set(all.map(key)));
    expect(a.events.messages).toHaveLength(2 * n);
    for (const list of perChannel(a.events.messages)) expect(list.map((k) => Number(k.split(":")[2]))).toEqual(list.map((_, i) => i + 1));
    // A shard's messages arrive in its own order.
    for (let s = 0; s < SHARDS; s++) {
      const ids = a.events.messages.filter((m) => m.global_id % SHARDS === s).map((m) => m.global_id);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
    }
    // The global backlog after any wire id: exactly the messages above it, ascending.
    const sorted = all.map((m) => m.global_id).sort((x, y) => x - y);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: sorted[sorted.length - 1] + 2 }), async (after) => {
        expect((await a.backend.globalBacklog(after)).map((m) => m.global_id)).toEqual(sorted.filter((g) => g > after));
      }),
      { numRuns: 15 },
    );
  });

  it("resets every shard into one new epoch, told once to each process", async () => {
    const [a, b] = await two();
    for (const ch of channels) await a.backend.append(req(ch, 1));
    await b.events.count(channels.length);
    await a.backend.reset();
    await b.events.until(() => b.events.epochs.length === 1, "the peer's epoch");
    expect(a.events.epochs).toEqual([a.backend.epoch]);
    expect(b.events.epochs).toEqual([a.backend.epoch]);
    for (const ch of channels) expect((await b.backend.append(req(ch, 2))).message_id).toBe(1);
    await a.events.count(2 * channels.length);
  });

  /** After `change` on the shard of `/k0`: one new epoch on every process, and every channel's ids restart. */
  async function startsOver(change: (b: RedisBackend, shard: number) => Promise<unknown>): Promise<void> {
    const [a, b] = await two();
    for (const ch of channels) for (let i = 0; i < 3; i++) await a.backend.append(req(ch, i));
    await a.events.count(3 * channels.length);
    await b.events.count(3 * channels.length);
    const before = a.backend.epoch;
    await change(a.backend, shardOf("/k0", SHARDS));
    // The safety poll reads every shard; the change is found by whoever reads first.
    await a.events.until(() => a.events.epochs.length >= 1, "an epoch event");
    await b.events.until(() => b.events.epochs.length >= 1, "the peer's epoch event");
    expect(a.backend.epoch).not.toBe(before);
    expect(a.events.epochs).toEqual([a.backend.epoch]);
    expect(b.events.epochs).toEqual([a.backend.epoch]);
    for (const ch of channels) {
      expect(await a.backend.backlog(ch, 0)).toEqual([]);
      expect((await b.backend.append(req(ch, "new"))).message_id).toBe(1);
    }
    await a.events.count(4 * channels.length);
    expect(a.events.messages.slice(3 * channels.length).map((m) => [m.message_id, m.data])).toEqual(channels.map(() => [1, "new"]));
  }

  it("starts one new epoch when a shard loses its state (its node flushed)", async () => {
    await startsOver((b, s) => onShard(b, s, "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do redis.call('DEL', k) end"));
  });

  it("starts one new epoch when a shard went back in time: its newest entry gone (a promoted replica that missed it)", async () => {
    await startsOver((b, s) =>
      onShard(
        b,
        s,
        `local gid = tonumber(redis.call('GET', KEYS[2]))
         redis.call('ZREMRANGEBYSCORE', KEYS[4], gid, gid)
         redis.call('DECR', KEYS[2])`,
      ),
    );
  });

  it("starts one new epoch when a shard holds another message under an id already seen", async () => {
    await startsOver((b, s) =>
      onShard(
        b,
        s,
        `local gid = tonumber(redis.call('GET', KEYS[2]))
         local e = redis.call('ZRANGEBYSCORE', KEYS[4], gid, gid)[1]
         redis.call('ZREMRANGEBYSCORE', KEYS[4], gid, gid)
         redis.call('ZADD', KEYS[4], gid, e .. ' ')`,
      ),
    );
  });
});
