import { createConnection, createServer, type Server, type Socket } from "node:net";
import { prng } from "../../bench/lib/prng.mjs";

/**
 * A fault-injecting TCP proxy for chaos runs: every connection gets added latency with jitter
 * (order kept, as TCP would), reads that stall now and then, and a reset (RST, both sides) after a
 * random lifetime. Faults are drawn from a PRNG seeded per connection (seed, connection number), so
 * a failing run is replayed by its seed: connection n gets the same faults whatever else happens.
 */
export interface ChaosOptions {
  /** Printed on every failure message; replay with the same seed (`CHAOS_SEED`). */
  seed: number;
  targetPort: number;
  targetHost?: string;
  /** Added one-way latency per chunk, in ms: base + uniform jitter. */
  latencyMs?: number;
  jitterMs?: number;
  /** A connection is reset after a lifetime drawn uniformly from this range (ms). */
  resetAfterMs?: [number, number];
  /** Chance, per chunk read, that reading on that side stalls for a time drawn from `stallMs`. */
  stallChance?: number;
  stallMs?: [number, number];
  /** Start calm (plain proxy) until `unleash()`: e.g. so the test page itself loads. Default false. */
  calm?: boolean;
}

export interface ChaosStats {
  connections: number;
  resets: number;
  stalls: number;
  bytes: number;
}

export interface ChaosProxy {
  port: number;
  url: string;
  seed: number;
  stats: ChaosStats;
  /** What was done to which connection, in order: the replay log. */
  log: string[];
  /** Starts injecting faults (on open connections too). */
  unleash(): void;
  /** Stops injecting faults; open connections stay up. */
  calm(): void;
  stop(): Promise<void>;
}

/** Faults are drawn from mulberry32 (shared with the benches). */
export { prng };

/** The seed a run uses: `CHAOS_SEED` to replay one, otherwise a fresh one (print it). */
export function chaosSeed(): number {
  const env = process.env.CHAOS_SEED;
  return env ? Number(env) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

interface Fate {
  rand: () => number;
  between: (range: [number, number]) => number;
}

function fate(seed: number, connection: number): Fate {
  const rand = prng((seed ^ Math.imul(connection + 1, 0x9e3779b1)) >>> 0);
  return { rand, between: ([lo, hi]) => lo + rand() * (hi - lo) };
}

export async function startChaosProxy(options: ChaosOptions): Promise<ChaosProxy> {
  const o = {
    targetHost: "127.0.0.1",
    latencyMs: 20,
    jitterMs: 30,
    resetAfterMs: [500, 5000] as [number, number],
    stallChance: 0.03,
    stallMs: [100, 1500] as [number, number],
    calm: false,
    ...options,
  };
  const stats: ChaosStats = { connections: 0, resets: 0, stalls: 0, bytes: 0 };
  const log: string[] = [];
  let wild = !o.calm;
  const open = new Set<{ arm(): void; disarm(): void; kill(): void }>();

  const server: Server = createServer((client: Socket) => {
    const n = stats.connections++;
    const f = fate(o.seed, n);
    const upstream = createConnection({ host: o.targetHost, port: o.targetPort });
    let resetTimer: NodeJS.Timeout | undefined;
    let dead = false;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    };

    const kill = () => {
      if (dead) return;
      dead = true;
      clearTimeout(resetTimer);
      for (const t of timers) clearTimeout(t);
      client.resetAndDestroy();
      upstream.resetAndDestroy();
      open.delete(conn);
    };
    const conn = {
      arm() {
        if (resetTimer || dead) return;
        const after = Math.round(f.between(o.resetAfterMs));
        resetTimer = setTimeout(() => {
          if (dead) return;
          stats.resets++;
          log.push(`#${n} reset after ${after} ms`);
          kill();
        }, after);
      },
      disarm() {
        clearTimeout(resetTimer);
        resetTimer = undefined;
      },
      kill,
    };
    open.add(conn);
    if (wild) conn.arm();

    /**
     * One direction: chunks delayed but never reordered (one FIFO and one timer per direction:
     * separate timers with equal due times may fire in any order), reads stalled now and then.
     */
    const pipe = (from: Socket, to: Socket, side: string) => {
      const queue: { due: number; chunk: Buffer | null }[] = [];
      let pumping = false;
      const pump = () => {
        while (queue.length && queue[0].due <= Date.now()) {
          const { chunk } = queue.shift()!;
          if (to.destroyed) continue;
          if (chunk) to.write(chunk);
          else to.end();
        }
        pumping = queue.length > 0;
        if (pumping) later(Math.max(1, queue[0].due - Date.now()), pump);
      };
      const push = (chunk: Buffer | null, delay: number) => {
        const last = queue.length ? queue[queue.length - 1].due : 0;
        queue.push({ due: Math.max(last, Date.now() + delay), chunk });
        if (!pumping) {
          pumping = true;
          later(Math.max(0, queue[0].due - Date.now()), pump);
        }
      };
      from.on("data", (chunk: Buffer) => {
        stats.bytes += chunk.length;
        if (!wild && !queue.length) {
          to.write(chunk);
          return;
        }
        push(chunk, wild ? o.latencyMs + f.rand() * o.jitterMs : 0);
        if (wild && f.rand() < o.stallChance) {
          const ms = Math.round(f.between(o.stallMs));
          stats.stalls++;
          log.push(`#${n} ${side} stalls ${ms} ms`);
          from.pause();
          later(ms, () => from.resume());
        }
      });
      // A clean end travels behind the data still in flight.
      from.on("end", () => push(null, 0));
    };
    pipe(client, upstream, "request");
    pipe(upstream, client, "response");
    const gone = () => {
      if (dead) return;
      dead = true;
      clearTimeout(resetTimer);
      open.delete(conn);
      // Let delayed data drain to whichever side is still there, then close it.
      setTimeout(() => {
        for (const t of timers) clearTimeout(t);
        client.destroy();
        upstream.destroy();
      }, o.latencyMs + o.jitterMs + 100);
    };
    client.on("error", gone);
    upstream.on("error", gone);
    client.on("close", gone);
    upstream.on("close", gone);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    seed: o.seed,
    stats,
    log,
    unleash() {
      wild = true;
      for (const c of open) c.arm();
    },
    calm() {
      wild = false;
      for (const c of open) c.disarm();
    },
    async stop() {
      wild = false;
      for (const c of [...open]) c.kill();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
