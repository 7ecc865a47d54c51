/**
 * The real client's `request` and `publish` against real servers (docs/protocol.md#12-requests):
 * on every transport and the default negotiation, 200 requests get 200 replies in order, each
 * handler run once, while connections are killed and the client switches; a request whose reply
 * was lost is answered from the kept reply; across two processes on Redis through a drain too.
 */
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Hono, type Context } from "hono";
import { MessageBus as ClientBus } from "../client/bus.js";
import { RequestError } from "../client/requests.js";
import type { TransportName } from "../client/types.js";
import { MessageBus as ServerBus, type MessageBusOptions } from "../server/index.js";
import type { Listening } from "../server/node/listen.js";
import { startForwarder, type Forwarder } from "../bench/lib/tcp-forwarder.mjs";
import { hasRedis, REDIS_URL, uniqueName } from "./helpers/backends.js";
import { requireService } from "./helpers/services.js";
import { waitFor } from "./helpers/wait.js";

interface Served extends Listening {
  bus: ServerBus;
  sockets: Set<Socket>;
  /** While set, WebSocket upgrades are refused (503), as by a proxy that stopped passing them. */
  refuseUpgrades: boolean;
}

const servers: Served[] = [];
const clients: ClientBus[] = [];
let forwarder: Forwarder | undefined;
afterEach(async () => {
  for (const c of clients.splice(0)) c.stop();
  await forwarder?.close();
  forwarder = undefined;
  for (const s of servers.splice(0)) await s.close();
});

async function serve(options: MessageBusOptions = {}): Promise<Served> {
  const bus = new ServerBus({ onError: () => {}, userIdLookup: (c: Context) => c.req.header("x-user") ?? null, longPollTimeout: 2000, ...options });
  await bus.ready();
  const app = new Hono();
  const flags = { refuseUpgrades: false };
  app.use(`${bus.options.base}/:clientId/ws`, async (c, next) => (flags.refuseUpgrades ? c.json({ error: "refused by the test" }, 503) : next()));
  app.route(bus.options.base, bus.routes());
  const l = await bus.listen(0, "127.0.0.1", app);
  const sockets = new Set<Socket>();
  l.server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  const served = Object.assign(flags, { ...l, bus, sockets });
  servers.push(served);
  return served;
}

function client(baseUrl: string, transport: TransportName | "default", opts: Record<string, unknown> = {}): ClientBus {
  const c = new ClientBus({ baseUrl, callbackInterval: 200, retryTransportInterval: 300, ...(transport === "default" ? {} : { transports: [transport] }), ...opts });
  clients.push(c);
  c.subscribe("/any", () => {}, -1);
  return c;
}

/** Runs of each request id, across every process that registers it. */
function counting(...buses: ServerBus[]): Map<number, number> {
  const runs = new Map<number, number>();
  for (const bus of buses) {
    bus.handle("n", (n) => {
      runs.set(n as number, (runs.get(n as number) ?? 0) + 1);
      return (n as number) * 10;
    });
  }
  return runs;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe.each(["websocket", "sse", "long-poll", "poll", "default"] as const)("%s", (transport) => {
  it("200 requests get 200 replies in order, each run once, while every connection is killed mid-run", async () => {
    const s = await serve();
    const runs = counting(s.bus);
    const c = client(s.url + "/", transport);
    const want = transport === "default" ? "websocket" : transport;
    await waitFor(() => c.transport === want, () => `on ${want} (${c.transport})`);
    const order: number[] = [];
    const replies: Promise<unknown>[] = [];
    const seen: (TransportName | null)[] = [];
    c.onTransport((n) => seen.push(n));
    for (const n of range(200)) {
      replies.push(c.request("n", n).then((r) => (order.push(n), r)));
      if (n === 100) {
        // Killed, and for the default client refused for a while: it falls back to SSE, then comes back.
        if (transport === "default") s.refuseUpgrades = true;
        for (const sock of s.sockets) sock.destroy();
        if (transport === "default") {
          await waitFor(() => c.transport === "sse", () => `fell back to SSE (${c.transport})`);
          s.refuseUpgrades = false;
        }
      }
    }
    expect(await Promise.all(replies)).toEqual(range(200).map((n) => n * 10));
    expect(order).toEqual(range(200));
    expect([...runs.entries()].filter(([, k]) => k !== 1)).toEqual([]);
    expect(runs.size).toBe(200);
    if (transport === "default") await waitFor(() => c.transport === "websocket", () => `back on WebSocket (${seen})`, 15_000);
  });
});

describe("a reply lost on the way", () => {
  it.each(["websocket", "long-poll"] as const)("%s: the connection dies after the handler ran; the retry gets the kept reply and the handler ran once", async (transport) => {
    const s = await serve();
    let runs = 0;
    s.bus.handle("once", () => {
      runs++;
      // The handler is done, its reply not yet sent: the connection carrying it dies now.
      for (const sock of s.sockets) sock.destroy();
      return "kept";
    });
    const c = client(s.url + "/", transport);
    await waitFor(() => c.transport === transport, `on ${transport}`);
    expect(await c.request("once")).toBe("kept");
    expect(runs).toBe(1);
  });
});

describe("errors as the client sees them", () => {
  it("a status as RequestError.status, no reply in time as code timeout, and other clients' replies never", async () => {
    // A handler that never answers holds that client's later requests until it times out: not long here.
    const s = await serve({ clientPublish: (_c, ch) => ch === "/open", handlerTimeout: 500 });
    s.bus.handle("who", (_d, ctx) => ctx.userId);
    s.bus.handle("never", () => new Promise(() => {}));
    const a = client(s.url + "/", "websocket", { clientId: "shared-id", headers: { "x-user": "a" } });
    const b = client(s.url + "/", "long-poll", { clientId: "shared-id", headers: { "x-user": "b" } });
    // The same client id and the same request ids, two users: each its own reply.
    expect(await Promise.all([a.request("who"), b.request("who"), a.request("who"), b.request("who")])).toEqual(["a", "b", "a", "b"]);
    await expect(a.request("missing")).rejects.toMatchObject({ name: "RequestError", status: 404, message: 'unknown method: "missing"' });
    const late = a.request("never", null, { timeout: 200 });
    await expect(late).rejects.toBeInstanceOf(RequestError);
    await expect(late).rejects.toMatchObject({ code: "timeout" });
    await expect(a.publish("/closed", 1)).rejects.toMatchObject({ status: 403 });
    await expect(b.publish("/closed", 1)).rejects.toMatchObject({ status: 403 });
    expect(await b.publish("/open", { x: 1 })).toEqual({ globalId: 1, messageId: 1 });
  });

  it("a request needs no subscription: without one it is a POST, and nothing else is opened", async () => {
    const s = await serve();
    s.bus.handle("ping", () => "pong");
    const c = new ClientBus({ baseUrl: s.url + "/" });
    clients.push(c);
    expect(await c.request("ping")).toBe("pong");
    expect(c.stats.requests).toBe(1);
    expect(c.transport).toBeNull();
    expect(s.bus.stats().subscribers).toMatchObject({ websocket: 0, sse: 0, "long-poll": 0 });
  });
});

describe.runIf(requireService("Redis", await hasRedis(), "apt-get install redis-server"))("two processes on Redis", () => {
  it.each(["websocket", "long-poll"] as const)("%s: requests made while the first process drains run once each, in order, across both", async (transport) => {
    const backend = `${REDIS_URL}?prefix=${encodeURIComponent(uniqueName("req") + ":")}`;
    const a = await serve({ backend });
    const b = await serve({ backend });
    const runs = counting(a.bus, b.bus);
    forwarder = await startForwarder({ target: a.port });
    const c = client(`http://127.0.0.1:${forwarder.port}/`, transport);
    await waitFor(() => c.transport === transport, `on ${transport}`);
    const replies: Promise<unknown>[] = [];
    for (const n of range(150)) {
      replies.push(c.request("n", n));
      if (n === 50) {
        forwarder.switchTo(b.port);
        void a.drain({ window: 100 });
      }
      if (n % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    expect(await Promise.all(replies)).toEqual(range(150).map((n) => n * 10));
    expect([...runs.entries()].filter(([, k]) => k !== 1)).toEqual([]);
    expect(runs.size).toBe(150);
  });
});
