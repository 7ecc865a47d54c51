/**
 * A process that is going away, as its clients and its load balancer see it (docs/protocol.md#75-moving-spreading-and-shedding,
 * README: Deploying behind a load balancer): the health check fails first; after the delay every
 * held connection is told to move, in the bytes each transport's client understands; a new one is
 * told at once (or not accepted at all); publishes go on; and a SIGTERM'd `cometbus serve` loses
 * no acknowledged publish. The client's side is in deploy-client.test.ts, the fleet in deploy-storm.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { chunkedPoll, longPoll, parse, poll, sse, WsClient, wsUrl, type SseEvent } from "./fixtures/clients.js";
import { raw, request } from "./fixtures/raw-tcp.js";
import { hasRedis, REDIS_URL, uniqueName } from "./helpers/backends.js";
import { spawnServer, type ServerProcess } from "./helpers/processes.js";
import { publishAll, type PublishRun } from "./helpers/publisher.js";
import { requireService } from "./helpers/services.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

let server: TestServer | undefined;
const processes: ServerProcess[] = [];
afterEach(async () => {
  await server?.close();
  server = undefined;
  for (const p of processes.splice(0)) await p.stop();
});

const HINT = 1000;
const moveStatus = (hint = HINT) => `[{"global_id":-1,"message_id":-1,"channel":"/__status","data":{"__drain":${hint}}}]`;
const subscribers = () => server!.bus.stats().subscribers;

async function health(s: TestServer): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${s.base}/health`);
  return { status: res.status, body: await res.json() };
}

/** One of each held kind, connected and registered. */
async function holdOneOfEach(s: TestServer) {
  const longPollAnswer = longPoll(s.base, "d-lp", { "/d": 0 });
  const chunks: Message[][] = [];
  const chunked = chunkedPoll(s.base, "d-ch", { "/d": 0 }, (c) => void chunks.push(c));
  const events: SseEvent[] = [];
  const stream = sse(`${s.base}/d-sse/sse?/d=0`, (e) => void events.push(e));
  const ws = new WsClient(wsUrl(s.base, "d-ws"));
  await ws.opened;
  ws.send({ subscribe: { "/d": 0 } });
  await waitFor(() => {
    const k = subscribers();
    return k["long-poll"] === 1 && k.chunked === 1 && k.sse === 1 && k.websocket === 1;
  }, () => `one of each held: ${JSON.stringify(subscribers())}`);
  return { longPollAnswer, chunked, stream, events, ws };
}

describe("Listening.drain", () => {
  it("fails the health check at once, serves as usual for the delay, then tells every held connection to move and takes no new one", async () => {
    server = await startServer({ longPollTimeout: 30_000 });
    const s = server;
    expect(await health(s)).toEqual({ status: 200, body: { status: "ok" } });
    const held = await holdOneOfEach(s);
    // A kept-alive connection, idle between two requests, as a proxy's upstream pool holds them.
    const keptAlive = raw(s.port, request("POST", "/message-bus/ka/poll?dlp=t", "/d=0", { "Content-Type": "application/x-www-form-urlencoded" }));
    await waitFor(() => keptAlive.received().includes("\r\n\r\n["), "the first answer on the kept-alive connection");
    expect(keptAlive.received()).not.toMatch(/connection: close/i);

    const draining = s.drain({ window: 300, delay: 400 });
    expect(await health(s)).toEqual({ status: 503, body: { status: "draining" } });
    // Within the delay: served as usual, told nothing (the balancer has not seen the health check yet).
    const during = await poll(s.base, "d-poll", { "/d": 0 });
    expect(during.text).toBe("[]");
    expect(subscribers().websocket).toBe(1);
    await draining;

    expect((await held.longPollAnswer).text).toBe(moveStatus());
    expect((await held.chunked).raw).toBe(`[]\r\n|\r\n${moveStatus()}\r\n|\r\n[]\r\n|\r\n`);
    expect((await held.stream).ended).toBe("server");
    // No id: an EventSource keeps the last one it had, and resumes from it.
    expect(held.events.at(-1)).toEqual({ id: undefined, data: moveStatus().slice(1, -1) });
    expect(await held.ws.whenClosed()).toEqual({ code: 1012, reason: `service restart: reconnect within ${HINT} ms` });
    expect(subscribers()).toMatchObject({ "long-poll": 0, chunked: 0, sse: 0, websocket: 0 });

    // The idle kept-alive connection is closed: the client's next request goes through the balancer
    // to another process. (One busy when the drain began closes after its answer: the next test.)
    await waitFor(keptAlive.closed, "the kept-alive connection closed");
    // And no new connection is taken.
    await expect(fetch(`${s.base}/health`)).rejects.toThrow();
  });
});

describe("bus.drain (the app keeps its own listener)", () => {
  it("tells each new connection to move at once, in its own transport's words, while publishes go on", async () => {
    server = await startServer({ longPollTimeout: 30_000 });
    const s = server;
    const seen: unknown[] = [];
    await s.bus.subscribe("/d", (m) => void seen.push(m.data));
    await s.bus.drain({ window: 0 });

    const lp = await longPoll(s.base, "n-lp", { "/d": 0 });
    expect(lp.text).toBe(moveStatus());
    expect(lp.headers.get("connection")).toBe("close");
    // A plain poll is answered as always (it holds nothing), on a connection that closes.
    const p = await poll(s.base, "n-poll", { "/d": -1 });
    expect(parse(p.text)[0].data).toEqual({ "/d": 0 });
    expect(p.headers.get("connection")).toBe("close");
    // A chunked long-poll is not begun: one JSON answer, which message-bus-client reads as such.
    const ch = await fetch(`${s.base}/n-ch/poll`, { method: "POST", body: new URLSearchParams({ "/d": "0" }) });
    expect(ch.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await ch.text()).toBe(moveStatus());

    let text = "";
    const stream = await sse(`${s.base}/n-sse/sse?/d=0`, () => {}, { onComment: () => {} });
    expect(stream.ended).toBe("server");
    const res = await fetch(`${s.base}/n-sse/sse?/d=0`, { headers: { Accept: "text/event-stream" } });
    text = await res.text();
    // A plain EventSource's own reconnection time, drawn within the hint; our client reads the status.
    expect(text).toMatch(/^retry: 1000\n: cometbus\n\nretry: \d+\n\ndata: /);
    expect(Number(/\nretry: (\d+)\n\ndata/.exec(text)![1])).toBeLessThanOrEqual(HINT);
    expect(text.endsWith(`data: ${moveStatus().slice(1, -1)}\n\n`)).toBe(true);

    const ws = new WsClient(wsUrl(s.base, "n-ws"));
    expect(await ws.whenClosed()).toEqual({ code: 1012, reason: `service restart: reconnect within ${HINT} ms` });
    expect(ws.frames).toHaveLength(1); // the welcome, then the close

    // Publishing goes on: the process's own subscribers, and the store, still see every message.
    await s.bus.publish("/d", "after");
    await waitFor(() => seen.includes("after"), "the publish during the drain");
    expect(subscribers()).toMatchObject({ "long-poll": 0, chunked: 0, sse: 0, websocket: 0, server: 1 });
  });

  it("spreads the moves over the window: a batch per 100 ms, every connection told once", async () => {
    server = await startServer({});
    const s = server;
    const sockets = Array.from({ length: 40 }, (_, i) => new WsClient(wsUrl(s.base, `w${i}`)));
    await Promise.all(sockets.map((w) => w.opened));
    await waitFor(() => subscribers().websocket === 40, "40 sockets");
    const t0 = Date.now();
    const closedAt: number[] = [];
    for (const w of sockets) void w.whenClosed().then(() => closedAt.push(Date.now() - t0));
    await s.bus.drain({ window: 1000 });
    await waitFor(() => closedAt.length === 40, "every socket told");
    // 40 over 1 s: 4 per tick. The first batch goes at once, the last one ends the window; a busy
    // machine may run late, never early.
    closedAt.sort((a, b) => a - b);
    expect(closedAt.filter((t) => t < 100).length).toBeLessThanOrEqual(4);
    expect(closedAt[39]).toBeGreaterThanOrEqual(850);
  });
});

describe.runIf(requireService("Redis", await hasRedis(), "apt-get install redis-server"))("cometbus serve on SIGTERM", () => {
  it("drains, exits 0, and every publish it acknowledged meanwhile is in the store", async () => {
    const token = "drain-token";
    const backend = `${REDIS_URL}?prefix=${encodeURIComponent(uniqueName("drain") + ":")}`;
    const a = await spawnServer(backend, token, ["--drain-window", "600", "--drain-delay", "200"]);
    const b = await spawnServer(backend, token);
    processes.push(a, b);
    const ws = new WsClient(wsUrl(a.url, "sig-ws"));
    await ws.opened;
    ws.send({ subscribe: { "/s": 0 } });

    let stop = false;
    const run: PublishRun = { acks: [], rejections: [] };
    // Paced to stay inside the channel's backlog (1,000), so the check below sees every one.
    const publishing = publishAll(a.url, token, 0, ["/s"], 0, 4, { until: () => stop, sink: run, delayMs: 10 });
    await waitFor(() => run.acks.length >= 50, "publishes acknowledged before the signal");
    const exited = new Promise<number | null>((r) => a.child.once("exit", (code) => r(code)));
    a.child.kill("SIGTERM");
    expect(await ws.whenClosed()).toEqual({ code: 1012, reason: `service restart: reconnect within ${HINT} ms` });
    expect(await exited).toBe(0);
    stop = true;
    await publishing;
    expect(a.output()).not.toMatch(/error/i);

    // Everything A acknowledged, up to its last moment, is there for B's clients, in order.
    const ids: number[] = [];
    for (;;) {
      const page = parse((await poll(b.url, "check", { "/s": ids.at(-1) ?? 0 })).text).filter((m) => m.channel === "/s");
      if (!page.length) break;
      ids.push(...page.map((m) => m.message_id));
    }
    const acked = run.acks.map((x) => x.message_id).sort((x, y) => x - y);
    expect(acked.every((id) => ids.includes(id))).toBe(true);
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1));
    // Refused ones failed to connect (it stopped accepting), or, sent on a connection just as the bus
    // closed, were told so (503 "the bus is closed": not stored, retry elsewhere; docs/protocol.md#81-http):
    // never another 5xx, from a half-closed store.
    const closed = "cometbus: the bus is closed, message not published";
    expect(run.rejections.filter((r) => r.status >= 500 && !(r.status === 503 && r.error === closed))).toEqual([]);
  });
});
