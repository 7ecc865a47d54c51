/**
 * The real client through a deploy (docs/protocol.md#75-moving-spreading-and-shedding): told to
 * move, it reconnects within the hint on the same transport (no strike, no fallback) to whichever
 * process the load balancer picks; cut without a word, its reconnection is spread over the window
 * the server last gave; a busy server's late first event is waited for, not taken as a buffering proxy.
 */
import type { IncomingMessage } from "node:http";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { MessageBus as ClientBus } from "../client/bus.js";
import type { TransportName } from "../client/types.js";
import { MemoryBackend, MessageBus as ServerBus, type Snapshot } from "../server/index.js";
import { startForwarder, type Forwarder } from "../bench/lib/tcp-forwarder.mjs";
import { hasRedis, REDIS_URL, uniqueName } from "./helpers/backends.js";
import { requireService } from "./helpers/services.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { pause, waitFor } from "./helpers/wait.js";

const servers: TestServer[] = [];
const clients: ClientBus[] = [];
let forwarder: Forwarder | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) c.stop();
  await forwarder?.close();
  forwarder = undefined;
  for (const s of servers.splice(0)) await s.close();
});

const CHANNELS = ["/a", "/b", "/c"];

function client(baseUrl: string, transport: TransportName | "default", opts: Record<string, unknown> = {}) {
  const c = new ClientBus({ baseUrl, callbackInterval: 200, ...(transport === "default" ? {} : { transports: [transport] }), ...opts });
  clients.push(c);
  const got: Record<string, number[]> = Object.fromEntries(CHANNELS.map((ch) => [ch, []]));
  for (const ch of CHANNELS) c.subscribe(ch, (_d, _g, id) => void got[ch].push(id), 0);
  const transports: (TransportName | null)[] = [];
  c.onTransport((n) => transports.push(n));
  c.start();
  return { c, got, transports };
}

async function publish(s: TestServer, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) for (const ch of CHANNELS) await s.bus.publish(ch, i);
}

const exactly = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Requests and upgrades a server sees, with their time, from `since` on. */
function arrivals(s: TestServer): { at: number[]; kinds: string[] } {
  const seen = { at: [] as number[], kinds: [] as string[] };
  const note = (req: IncomingMessage) => {
    seen.at.push(Date.now());
    seen.kinds.push(/\/(ws|sse|poll)\b/.exec(req.url ?? "")?.[1] ?? "other");
  };
  s.server.on("request", note);
  s.server.on("upgrade", note);
  return seen;
}

describe.runIf(requireService("Redis", await hasRedis(), "apt-get install redis-server"))("a drained process's clients", () => {
  it.each(["websocket", "sse", "long-poll", "poll", "default"] as const)(
    "%s: move to the other process on the same transport, within the hint, every message once, in order",
    async (transport) => {
      const backend = `${REDIS_URL}?prefix=${encodeURIComponent(uniqueName("move") + ":")}`;
      const a = await startServer({ backend, longPollTimeout: 3000 });
      const b = await startServer({ backend, longPollTimeout: 3000 });
      servers.push(a, b);
      forwarder = await startForwarder({ target: a.port });
      const { c, got, transports } = client(`http://127.0.0.1:${forwarder.port}/`, transport);
      await publish(a, 5);
      const want = transport === "default" ? "websocket" : transport;
      await waitFor(() => CHANNELS.every((ch) => got[ch].length === 5) && transports.at(-1) === want, () => `the first 5 on ${want}: ${JSON.stringify({ got, transports })}`);
      const before = transports.length;

      // The load balancer takes A out of rotation; A drains.
      forwarder.switchTo(b.port);
      const atB = arrivals(b);
      const t0 = Date.now();
      await a.drain({ window: 200 });
      await publish(b, 5);
      await waitFor(() => CHANNELS.every((ch) => got[ch].length >= 10), () => `all 10 from B: ${JSON.stringify(got)}`);
      await pause(100); // a duplicate would have come with them
      for (const ch of CHANNELS) expect(got[ch]).toEqual(exactly(10));
      // The same transport throughout: moving is not failing.
      expect(transports.slice(before)).toEqual([]);
      expect(c.stats.transportSwitches).toBe(transport === "default" ? before - 1 : 0);
      // Told "within 1000 ms" (a poll: its interval): at B well within that, the drain's 200 ms included.
      expect(atB.at.length).toBeGreaterThan(0);
      expect(atB.at[0] - t0).toBeLessThan(transport === "poll" ? 2000 : 1200 + 1000);
      expect(a.bus.stats().subscribers).toMatchObject({ "long-poll": 0, chunked: 0, sse: 0, websocket: 0 });
    },
  );
});

describe("clients cut without a word (the process died)", () => {
  it.each(["websocket", "sse", "long-poll"] as const)(
    "%s: reconnect spread over the window the server gave (its connections at reconnectRate), then resume exactly",
    async (transport) => {
      // 24 connections at 12 reconnections per second: a 2 s window, told to each as the process fills.
      const s = await startServer({ reconnectRate: 12, longPollTimeout: 5000 });
      servers.push(s);
      const sockets = new Set<import("node:net").Socket>();
      s.server.on("connection", (sock) => {
        sockets.add(sock);
        sock.once("close", () => sockets.delete(sock));
      });
      // Streams hear the grown hint within a second. A long-poll hears it with every answer
      // (unchunked: one per message, as when SSE is on the list).
      const fleet = Array.from({ length: 24 }, () => client(s.url + "/", transport, transport === "long-poll" ? { enableChunkedEncoding: false } : {}));
      await publish(s, 2);
      await waitFor(() => fleet.every((f) => CHANNELS.every((ch) => f.got[ch].length === 2)), "every client has the first 2");
      await publish(s, 1);
      await waitFor(() => fleet.every((f) => CHANNELS.every((ch) => f.got[ch].length === 3)), "every client has the first 3");
      // Streams hear the grown hint within a second; polls in their next answer's header.
      await waitFor(() => fleet.every((f) => f.c.spreadMs >= 1500), () => `every client told ~2000 ms: ${fleet.map((f) => f.c.spreadMs)}`);

      // Held a while: a long-poll cut early is a failing request (backed off), one held a while a lost connection.
      await pause(1200);
      const seen = arrivals(s);
      const t0 = Date.now();
      for (const sock of sockets) sock.destroy();
      await waitFor(() => seen.kinds.filter((k) => k !== "other").length >= 24, () => `24 reconnections (${seen.kinds.length})`, 20_000);
      const after = seen.at.slice(0, 24).map((t) => t - t0);
      // Before, all 24 were back within ~100 ms. Now at uniform moments within ~2 s: the first half
      // second holds about a quarter of them; that more than half came in it has odds below 1 in 500.
      expect(after.filter((t) => t < 500).length).toBeLessThanOrEqual(12);
      expect(Math.max(...after)).toBeGreaterThan(800);

      await publish(s, 2);
      await waitFor(() => fleet.every((f) => CHANNELS.every((ch) => f.got[ch].length >= 5)), "every client has all 5");
      await pause(100);
      for (const f of fleet) {
        for (const ch of CHANNELS) expect(f.got[ch]).toEqual(exactly(5));
        expect(f.transports).toEqual([transport]);
      }
    },
  );
});

/** A store whose next snapshots take `delayMs`: a server busy with a burst of subscribes. */
class SlowBackend extends MemoryBackend {
  delayMs = 0;
  override async snapshot(channels: Iterable<string>): Promise<Snapshot> {
    if (this.delayMs) await pause(this.delayMs);
    return super.snapshot(channels);
  }
}

describe("a busy server's late first event", () => {
  it("SSE: the head and preamble came, so the stream is waited for (not buffered), and it is the transport in use", async () => {
    const backend = new SlowBackend();
    const s = await startServer({ backend });
    servers.push(s);
    await publish(s, 1);
    const urls: string[] = [];
    const fetchFn = globalThis.fetch;
    globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
      urls.push(String(input));
      return fetchFn(input, init);
    }) as typeof fetch;
    try {
      // Half again the first-event deadline: past it, within the second chance.
      backend.delayMs = 600;
      const { got, transports } = client(s.url + "/", "default", { transports: ["sse", "long-poll"], firstChunkTimeout: 400 });
      await waitFor(() => transports.at(-1) === "sse", () => `on SSE: ${transports}`);
      backend.delayMs = 0;
      await waitFor(() => CHANNELS.every((ch) => got[ch].length === 1), "the first message");
      // One stream, opened once: it never gave way.
      expect(urls.filter((u) => u.endsWith("/sse"))).toHaveLength(1);
      expect(transports).toEqual(["long-poll", "sse"]);
    } finally {
      globalThis.fetch = fetchFn;
    }
  });

  it("WebSocket: a socket not even open by the deadline gets a second chance (a busy server), and is the transport in use", async () => {
    const bus = new ServerBus({ onError: () => {} });
    await bus.ready();
    const app = new Hono();
    // The server takes 600 ms to accept an upgrade: past the 400 ms deadline, within the second chance.
    app.use(`${bus.options.base}/:clientId/ws`, async (_c, next) => {
      await pause(600);
      await next();
    });
    app.route(bus.options.base, bus.routes());
    const l = await bus.listen(0, "127.0.0.1", app);
    servers.push({ ...l, bus, base: l.url + bus.options.base });
    let upgrades = 0;
    l.server.on("upgrade", () => upgrades++);
    await bus.publish("/a", 1);
    const { got, transports } = client(l.url + "/", "default", { transports: ["websocket", "long-poll"], firstChunkTimeout: 400 });
    await waitFor(() => transports.at(-1) === "websocket", () => `on WebSocket: ${transports}`);
    await waitFor(() => got["/a"].length === 1, "the first message");
    expect(upgrades).toBe(1);
    expect(transports).toEqual(["long-poll", "websocket"]);
  });
});
