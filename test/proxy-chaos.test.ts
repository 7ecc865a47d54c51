/** The chaos proxy itself: faults replay by seed, data that gets through is intact and in order. */
import { createServer, createConnection, type Server, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prng, startChaosProxy, type ChaosProxy } from "./helpers/chaos-proxy.js";

let echo: Server;
let echoPort: number;

beforeAll(async () => {
  echo = createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
  echoPort = (echo.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => echo.close(() => r())));

/** Opens connections one after another, each held until the proxy resets it: the reset log. */
async function resetLog(seed: number, connections: number): Promise<string[]> {
  const proxy = await startChaosProxy({ seed, targetPort: echoPort, resetAfterMs: [20, 120], stallChance: 0 });
  try {
    for (let i = 0; i < connections; i++) {
      const error = await new Promise<string>((resolve) => {
        const s = createConnection({ port: proxy.port, host: "127.0.0.1" });
        s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        s.on("close", () => resolve("closed"));
      });
      expect(error).toBe("ECONNRESET");
    }
    return proxy.log.filter((l) => l.includes("reset"));
  } finally {
    await proxy.stop();
  }
}

describe("chaos proxy", () => {
  it("draws the same faults for the same seed, other faults for another", async () => {
    const a = await resetLog(1234, 4);
    const b = await resetLog(1234, 4);
    const c = await resetLog(99, 4);
    expect(a).toHaveLength(4);
    expect(a.map((l) => l.split(" ")[0])).toEqual(["#0", "#1", "#2", "#3"]);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it("the PRNG is a pure function of its seed", () => {
    const x = prng(7);
    const y = prng(7);
    const first = Array.from({ length: 5 }, x);
    expect(Array.from({ length: 5 }, y)).toEqual(first);
    expect(new Set(first).size).toBe(5);
    expect(first.every((v) => v >= 0 && v < 1)).toBe(true);
  });

  describe("with latency, jitter and stalls but no resets", () => {
    let proxy: ChaosProxy;
    beforeAll(async () => {
      proxy = await startChaosProxy({
        seed: 42,
        targetPort: echoPort,
        resetAfterMs: [1e9, 1e9],
        latencyMs: 5,
        jitterMs: 20,
        stallChance: 0.2,
        stallMs: [10, 60],
      });
    });
    afterAll(() => proxy.stop());

    it("delivers every byte, in order, however the chunks are timed", async () => {
      const payload = randomBytes(256 * 1024);
      const s: Socket = createConnection({ port: proxy.port, host: "127.0.0.1" });
      const got: Buffer[] = [];
      let n = 0;
      const done = new Promise<void>((resolve, reject) => {
        s.on("data", (d: Buffer) => {
          got.push(d);
          n += d.length;
          if (n >= payload.length) resolve();
        });
        s.on("error", reject);
      });
      // Small writes spread over time, so each is its own chunk with its own delay draw.
      for (let i = 0; i < payload.length; i += 1024) {
        s.write(payload.subarray(i, i + 1024));
        if (i % 8192 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      await done;
      s.destroy();
      expect(Buffer.concat(got).equals(payload)).toBe(true);
      expect(proxy.stats.stalls).toBeGreaterThan(0);
      expect(proxy.stats.resets).toBe(0);
    });
  });

  it("stays calm until unleashed", async () => {
    const proxy = await startChaosProxy({ seed: 5, targetPort: echoPort, resetAfterMs: [10, 20], calm: true });
    try {
      const s = createConnection({ port: proxy.port, host: "127.0.0.1" });
      const closed = new Promise<string>((resolve) => s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "")));
      const echoed = new Promise<string>((resolve) => s.once("data", (d) => resolve(d.toString())));
      s.write("calm");
      expect(await echoed).toBe("calm");
      expect(proxy.stats.resets).toBe(0);
      proxy.unleash();
      expect(await closed).toBe("ECONNRESET");
      expect(proxy.stats.resets).toBe(1);
    } finally {
      await proxy.stop();
    }
  });
});
