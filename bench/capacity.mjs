#!/usr/bin/env node
/**
 * How many processes and Redis shards a load needs (README, "Capacity model"), from measured figures:
 *
 *   node bench/capacity.mjs [--connections 1000000] [--publishes 10000] [--bytes 1024] [--fanout 100]
 *                           [--transport ws|sse|long-poll] [--json]
 *   node bench/capacity.mjs --measure [--redis redis://127.0.0.1:6379/0]   (needs npm run build)
 *
 * The model. Each process is one core and one event loop:
 *   - connections cost memory: RSS per idle connection (bench idle-10k), plus the messages queued to them;
 *   - deliveries cost CPU: µs per delivery (bench fanout-1k, one message to many connections);
 *   - every process reads every message from the store (that is how any connection anywhere may hold
 *     any channel): µs per message read, per process, whatever the number of processes;
 *   - each shard's master runs one script per publish and sends every message once to every
 *     process (µs of Redis CPU per publish, and per process that reads it).
 * The default figures are this repository's measurements (the sources below); --measure measures the
 * two store figures on a Redis at hand, to pass back as flags.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";

/** Measured figures and where they come from. */
const FIGURES = {
  // bench/results/latest.md, idle-10k, "RSS/conn KB" (2 s after connecting; settled is lower).
  rssPerConnKB: { ws: 7.6, sse: 14.7, "long-poll": 12.8 },
  // bench/results/latest.md, fanout-1k (1000 subscribers × 100 msg/s), "µs/delivery".
  usPerDelivery: { ws: 8.37, sse: 8.11, "long-poll": 6.71 },
  // node bench/capacity.mjs --measure on one Redis 7.0, 1 KB messages, two runs averaged (2-core VM,
  // load average ≈ 15 from other runs, so high): Redis CPU per publish script, Redis CPU per message
  // read by one process, and a reading process's own CPU per message (read, decode, no subscriber).
  redisUsPerPublish: 92,
  redisUsPerRead: 9,
  processUsPerMessage: 17,
};

const BUDGET = {
  /** Share of a process's core given to the steady load (the rest: bursts, catch-ups, GC, deploys). */
  cpu: 0.5,
  /** Memory a process may use for connections, MB. */
  memoryMB: 2048,
  /** Share of a Redis master's core the steady load may use. */
  redisCpu: 0.5,
  /** Bytes/s a Redis master may send (a 10 Gbit/s NIC at half). */
  redisBytesPerSecond: 625e6,
  /** A process's send buffer for slow clients: messages held per connection on average. */
  queuedPerConn: 1,
};

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "1000000" },
    publishes: { type: "string", default: "10000" },
    bytes: { type: "string", default: "1024" },
    fanout: { type: "string", default: "100" },
    transport: { type: "string", default: "ws" },
    "rss-kb": { type: "string" },
    "us-per-delivery": { type: "string" },
    "redis-us-per-publish": { type: "string", default: String(FIGURES.redisUsPerPublish) },
    "redis-us-per-read": { type: "string", default: String(FIGURES.redisUsPerRead) },
    "process-us-per-message": { type: "string", default: String(FIGURES.processUsPerMessage) },
    json: { type: "boolean", default: false },
    measure: { type: "boolean", default: false },
    redis: { type: "string", default: "redis://127.0.0.1:6379/0" },
  },
});

if (values.measure) await measure(values.redis);
else report(plan(load()));

function load() {
  const t = values.transport;
  if (!(t in FIGURES.rssPerConnKB)) throw new Error(`--transport: one of ${Object.keys(FIGURES.rssPerConnKB).join(", ")}`);
  return {
    connections: Number(values.connections),
    publishes: Number(values.publishes),
    bytes: Number(values.bytes),
    fanout: Number(values.fanout),
    transport: t,
    rssKB: Number(values["rss-kb"] ?? FIGURES.rssPerConnKB[t]),
    usPerDelivery: Number(values["us-per-delivery"] ?? FIGURES.usPerDelivery[t]),
    redisUsPerPublish: Number(values["redis-us-per-publish"]),
    redisUsPerRead: Number(values["redis-us-per-read"]),
    processUsPerMessage: Number(values["process-us-per-message"]),
  };
}

/** The model: processes from memory and CPU, then shards from what those processes ask of Redis. */
export function plan(l) {
  const deliveries = l.publishes * l.fanout;
  const perConnKB = l.rssKB + (BUDGET.queuedPerConn * l.bytes) / 1024;
  const byMemory = Math.ceil(l.connections / ((BUDGET.memoryMB * 1024) / perConnKB));
  // Every process spends this on reading every message, however many processes there are.
  const readShare = (l.publishes * l.processUsPerMessage) / 1e6;
  const left = BUDGET.cpu - readShare;
  const byCpu = left > 0 ? Math.ceil((deliveries * l.usPerDelivery) / 1e6 / left) : Infinity;
  const processes = Math.max(byMemory, byCpu, 1);
  // The publish rate at which reading every message fills a process's budget on its own.
  const readCeiling = Math.floor((BUDGET.cpu * 1e6) / l.processUsPerMessage);
  if (!Number.isFinite(processes)) return { load: l, deliveriesPerSecond: deliveries, readCeiling, impossible: true };
  // Redis: per publish, the script plus one read per process (reads batch many messages at load; the
  // measured µs per read are per message read).
  const redisUs = l.publishes * (l.redisUsPerPublish + processes * l.redisUsPerRead);
  const redisBytes = l.publishes * l.bytes * (processes + 2); // out to every process, in, and to the replica
  const byRedisCpu = Math.ceil(redisUs / 1e6 / BUDGET.redisCpu);
  const byRedisBytes = Math.ceil(redisBytes / BUDGET.redisBytesPerSecond);
  const shards = Math.max(byRedisCpu, byRedisBytes, 1);
  const limits = [
    ["process memory (connections)", byMemory],
    ["process CPU (deliveries)", byCpu],
  ];
  const first = left <= 0 ? "every process reading every message: no number of processes carries this publish rate" : limits.sort((a, b) => b[1] - a[1])[0][0];
  return {
    load: l,
    deliveriesPerSecond: deliveries,
    processes,
    byMemory,
    byCpu,
    readShareOfCore: +readShare.toFixed(3),
    readCeiling,
    connectionsPerProcess: Math.ceil(l.connections / processes),
    shards,
    byRedisCpu,
    byRedisBytes,
    redisCoresTotal: +(redisUs / 1e6).toFixed(2),
    redisMBpsTotal: Math.round(redisBytes / 1e6),
    firstBottleneck: first,
    storeBottleneck: byRedisBytes >= byRedisCpu ? "Redis bandwidth (every message to every process)" : "Redis CPU (scripts and reads)",
    growsWithProcesses: {
      redisReadsPerSecond: l.publishes * processes,
      redisMBpsOut: Math.round((l.publishes * l.bytes * processes) / 1e6),
      connectionsPerMaster: 2 * processes,
      safetyPollReadsPerSecond: +((processes * shards) / 2).toFixed(1),
    },
  };
}

function report(p) {
  if (values.json) {
    process.stdout.write(JSON.stringify(p, null, 2) + "\n");
    return;
  }
  const l = p.load;
  if (p.impossible) {
    process.stdout.write(
      `${l.publishes.toLocaleString("en")} publishes/s cannot be carried: every process reads every message (${l.processUsPerMessage} µs each), ` +
        `so above ${p.readCeiling.toLocaleString("en")} publishes/s that alone fills ${BUDGET.cpu * 100}% of a core, however many processes there are. ` +
        "Split the channels over separate deployments (each its own prefix), or lower the rate.\n",
    );
    return;
  }
  const rows = [
    ["load", `${l.connections.toLocaleString("en")} ${l.transport} connections, ${l.publishes.toLocaleString("en")} publishes/s of ${l.bytes} B, ${l.fanout} subscribers per channel → ${p.deliveriesPerSecond.toLocaleString("en")} deliveries/s`],
    ["processes (1 core each)", `**${p.processes}** — memory needs ${p.byMemory} (${l.rssKB} KB + one queued message per connection, ${BUDGET.memoryMB} MB each), CPU needs ${p.byCpu} (${l.usPerDelivery} µs/delivery, ${BUDGET.cpu * 100}% of a core, of which reading every message takes ${(p.readShareOfCore * 100).toFixed(1)}%)`],
    ["connections per process", p.connectionsPerProcess.toLocaleString("en")],
    ["Redis shards (masters)", `**${p.shards}** — CPU needs ${p.byRedisCpu} (${p.redisCoresTotal} cores in all: ${l.redisUsPerPublish} µs per publish + ${l.redisUsPerRead} µs per process per message), bandwidth needs ${p.byRedisBytes} (${p.redisMBpsTotal} MB/s in all)`],
    ["first bottleneck", `${p.firstBottleneck}; in the store: ${p.storeBottleneck}; the publish rate's ceiling: ${p.readCeiling.toLocaleString("en")}/s (every process reading every message)`],
    ["grows with processes", `Redis reads ${p.growsWithProcesses.redisReadsPerSecond.toLocaleString("en")} messages/s and sends ${p.growsWithProcesses.redisMBpsOut} MB/s; ${p.growsWithProcesses.connectionsPerMaster} connections per master (commands and sharded subscriptions); ${p.growsWithProcesses.safetyPollReadsPerSecond} idle safety-poll reads/s`],
  ];
  process.stdout.write("| | |\n|---|---|\n" + rows.map(([k, v]) => `| ${k} | ${v} |`).join("\n") + "\n");
}

/**
 * The store figures on a real Redis: Redis CPU (INFO commandstats, EVALSHA) per publish with one reader
 * and with six, and the readers' own CPU per message.
 */
async function measure(url) {
  const { RedisBackend } = await import("../dist/server/index.js");
  const { Redis } = await import("ioredis");
  const admin = new Redis(url);
  const N = 4000;
  const data = { pad: "x".repeat(1000) };
  const dataJson = JSON.stringify(data);
  const usec = async () => {
    const m = /cmdstat_evalsha:calls=\d+,usec=(\d+)/.exec(await admin.info("commandstats"));
    return m ? Number(m[1]) : 0;
  };
  const out = {};
  for (const readers of [1, 6]) {
    const prefix = `capacity_${process.pid}_${randomBytes(3).toString("hex")}:`;
    const counts = Array(readers).fill(0);
    const opened = [];
    for (let r = 0; r < readers; r++) {
      const b = new RedisBackend({ url, prefix, onError: () => {} });
      await b.start({ message: () => counts[r]++, epoch: () => {} });
      opened.push(b);
    }
    const pub = new RedisBackend({ url, prefix, onError: () => {} });
    await pub.start({ message: () => {}, epoch: () => {} });
    opened.push(pub);
    const before = await usec();
    const cpu0 = process.cpuUsage();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < N) {
          const i = next++;
          await pub.append({ channel: `/cap/${i % 10}`, data, dataJson, maxBacklogSize: 1000, maxBacklogAge: 3600, maxGlobalBacklogSize: 5000 });
        }
      }),
    );
    while (counts.some((c) => c < N)) await new Promise((r) => setTimeout(r, 20));
    const cpu = process.cpuUsage(cpu0);
    out[readers] = { redisUs: (await usec()) - before, processUs: cpu.user + cpu.system };
    // The publisher's own feed reads too: it is one more reader.
    out[readers].readersCounted = readers + 1;
    await pub.destroy();
    for (const b of opened) await b.close();
  }
  admin.disconnect();
  // redisUs(k readers) = N·(a + k·b), with k = readers + the publisher's own feed.
  const [one, three] = [out[1], out[6]];
  const b = (three.redisUs - one.redisUs) / N / (three.readersCounted - one.readersCounted);
  const a = one.redisUs / N - one.readersCounted * b;
  const perMessage = (three.processUs - one.processUs) / N / (three.readersCounted - one.readersCounted);
  process.stdout.write(
    JSON.stringify(
      { redisUsPerPublish: +a.toFixed(1), redisUsPerRead: +b.toFixed(1), processUsPerMessage: +perMessage.toFixed(1), raw: out, note: `${N} publishes of ${dataJson.length} B, 16 in flight` },
      null,
      2,
    ) + "\n",
  );
}
