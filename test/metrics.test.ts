// GET {base}/metrics: Prometheus text, strictly parsed, behind its token; counters that follow a
// known sequence; the clients' fallback reports (docs/protocol.md#13-fallback-reports), real and fuzzed.
import type { Duplex } from "node:stream";
import fc from "fast-check";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { MessageBus as ClientBus } from "../client/bus.js";
import { FALLBACK_REASONS, FALLBACK_TRANSPORTS, encodeFallback, parseFallback, type FallbackReport } from "../src/fallback.js";
import { MessageBus } from "../server/index.js";
import { poll, sse, WsClient, wsUrl } from "./fixtures/clients.js";
import { parsePrometheusText, valueOf } from "./helpers/prometheus-text.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

const closers: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function server(options: ConstructorParameters<typeof MessageBus>[0] = {}): Promise<TestServer> {
  const s = await startServer(options);
  closers.push(() => s.close());
  return s;
}

async function scrape(s: TestServer, token = "M") {
  const res = await fetch(`${s.base}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text()).samples;
}

const report = fc.record({
  from: fc.constantFrom(...FALLBACK_TRANSPORTS),
  to: fc.constantFrom(...FALLBACK_TRANSPORTS),
  reason: fc.constantFrom(...FALLBACK_REASONS),
});

describe("metrics", () => {
  it("are off by default (404) and behind their bearer token (401)", async () => {
    const off = await server();
    const res = await fetch(`${off.base}/metrics`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/metrics are disabled/) });
    await expect(off.bus.metricsRegistry()).rejects.toThrow(/metrics are off/);

    const on = await server({ metrics: { token: "M" } });
    const no = await fetch(`${on.base}/metrics`, { headers: { Authorization: "Bearer wrong" } });
    expect(no.status).toBe(401);
    expect(await no.json()).toEqual({ error: "missing or wrong bearer token" });
    // Without a token of its own the publish token guards it.
    const shared = await server({ metrics: true, publishToken: "P" });
    expect((await fetch(`${shared.base}/metrics`)).status).toBe(401);
    await scrape(shared, "P");
  });

  it("counts 2 connections, 10 publishes delivered to both, and 1 forced fallback with its reason", async () => {
    const s = await server({ metrics: { token: "M" } });
    const before = await scrape(s);
    for (const name of ["cometbus_messages_published_total", "cometbus_bytes_written_total", "cometbus_client_fallbacks_total"]) {
      expect(valueOf(before, name), name).toBe(0);
    }

    // Two connections: a WebSocket and an SSE stream, both new-only on /m.
    const ws = new WsClient(wsUrl(s.base, "w1"));
    closers.push(() => ws.close());
    await ws.opened;
    ws.send({ subscribe: { "/m": -1 } });
    await ws.until(() => ws.frames.length >= 2, "the welcome and the status");
    const ac = new AbortController();
    closers.push(() => ac.abort());
    let sseMessages = 0;
    let sseOpen!: () => void;
    const sseReady = new Promise<void>((r) => (sseOpen = r));
    const stream = sse(`${s.base}/s1/sse?${encodeURIComponent("/m")}=-1`, (e) => {
      const m = JSON.parse(e.data);
      if (m.channel === "/__status") sseOpen();
      else sseMessages++;
      return sseMessages === 10;
    }, { signal: ac.signal });
    await sseReady;
    const two = await scrape(s);
    expect(valueOf(two, "cometbus_connections", { transport: "websocket" })).toBe(1);
    expect(valueOf(two, "cometbus_connections", { transport: "sse" })).toBe(1);

    for (let i = 0; i < 10; i++) await s.bus.publish("/m", i);
    await ws.until(() => ws.messages().filter((m) => m.channel === "/m").length === 10, "10 messages");
    await stream;

    // A real client on WebSocket, whose socket is cut and whose upgrades are then refused: it falls
    // back to long-poll and says why with that long-poll's request.
    const client = new ClientBus({ baseUrl: s.url + "/", transports: ["websocket", "long-poll"], callbackInterval: 50, minPollInterval: 20 });
    closers.push(() => client.stop());
    const seen: string[] = [];
    client.onTransport((n) => seen.push(n));
    client.subscribe("/m", () => {});
    client.start();
    await waitFor(() => seen.at(-1) === "websocket", () => `the client on WebSocket (${seen})`);
    s.server.removeAllListeners("upgrade");
    s.server.on("upgrade", (_req, socket: Duplex) => socket.destroy());
    for (const sub of s.bus.hub.subscribers) if (sub.kind === "websocket" && sub !== undefined) (sub as unknown as { cut(): void }).cut();
    await waitFor(async () => valueOf(await scrape(s), "cometbus_client_fallbacks_total", { from: "websocket", to: "long-poll", reason: "refused" }) === 1, "the fallback report");

    const after = await scrape(s);
    expect(valueOf(after, "cometbus_messages_published_total")).toBe(10);
    expect(valueOf(after, "cometbus_messages_delivered_total", { transport: "websocket" })).toBe(10);
    expect(valueOf(after, "cometbus_messages_delivered_total", { transport: "sse" })).toBe(10);
    expect(valueOf(after, "cometbus_bytes_written_total")).toBeGreaterThan(10 * 2 * 40);
    expect(valueOf(after, "cometbus_publish_failures_total", { reason: "invalid" })).toBe(0);
    expect(after.filter((x) => x.name === "cometbus_client_fallbacks_total").map((x) => x.labels)).toEqual([{ from: "websocket", to: "long-poll", reason: "refused" }]);
    expect(valueOf(after, "cometbus_event_loop_lag_seconds")).toBeGreaterThanOrEqual(0);
  });

  it("counts catch-ups, resets by reason, publish failures; registers in the app's own registry", async () => {
    const registry = new Registry();
    const s = await server({ metrics: { registry, route: false } });
    expect((await fetch(`${s.base}/metrics`)).status).toBe(404);
    await s.bus.publish("/c", 1);
    await poll(s.base, "c1", { "/c": 0 });
    await poll(s.base, "c2", { "/c": 99 });
    await poll(s.base, "c3", { "/c": 0, __epoch: "another" } as never);
    await expect(s.bus.publish("bad", 1)).rejects.toThrow();
    expect(await s.bus.metricsRegistry()).toBe(registry);
    const samples = parsePrometheusText(await registry.metrics()).samples;
    expect(valueOf(samples, "cometbus_catch_ups_total", { transport: "poll" })).toBe(3);
    expect(valueOf(samples, "cometbus_resets_total", { reason: "past-end" })).toBe(1);
    expect(valueOf(samples, "cometbus_resets_total", { reason: "epoch" })).toBe(1);
    expect(valueOf(samples, "cometbus_publish_failures_total", { reason: "invalid" })).toBe(1);
  });
});

describe("fallback reports", () => {
  it("encode and parse back; anything else is not a report", () => {
    fc.assert(
      fc.property(report, fc.option(fc.integer({ min: 0, max: 86_400 }), { nil: undefined }), (r, seconds) => {
        const full: FallbackReport = r.reason === "proxy-cut" && seconds !== undefined ? { ...r, seconds } : r;
        expect(parseFallback(encodeFallback(full))).toEqual(full);
      }),
    );
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "grapheme", maxLength: 100 }), fc.array(fc.constantFrom("websocket", "sse", "refused", ",", "1", "-1", "x", "proxy-cut", "99999999")).map((a) => a.join(","))), (v) => {
        const r = parseFallback(v);
        if (r === null) return;
        expect(FALLBACK_TRANSPORTS).toContain(r.from);
        expect(FALLBACK_TRANSPORTS).toContain(r.to);
        expect(FALLBACK_REASONS).toContain(r.reason);
        if (r.seconds !== undefined) expect(r.seconds).toBeLessThanOrEqual(86_400);
      }),
      { seed: 15 },
    );
  });

  it("a bad report never fails the request it rides on and never becomes a series", async () => {
    const s = await server({ metrics: { token: "M" } });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "binary", maxLength: 80 }), report.map((r) => encodeFallback(r) + ",x")), async (v) => {
        const res = await fetch(`${s.base}/f1/poll?dlp=t&__fallback=${encodeURIComponent(v)}`, { method: "POST", body: "/f=-1", headers: { "Content-Type": "application/x-www-form-urlencoded" } });
        expect(res.status).toBe(200);
        await res.text();
      }),
      { numRuns: 60, seed: 15 },
    );
    const samples = await scrape(s);
    for (const x of samples.filter((x) => x.name === "cometbus_client_fallbacks_total")) {
      expect(parseFallback(`${x.labels.from},${x.labels.to},${x.labels.reason}`)).not.toBeNull();
    }
  });
});
