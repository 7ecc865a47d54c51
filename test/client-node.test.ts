import { afterEach, describe, expect, it } from "vitest";
import { MessageBus as DefaultBus } from "../client/index.js";
import { MessageBus } from "../client/bus.js";
import type { TransportName } from "../client/types.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

const CHANNELS = ["/node/a", "/node/b", "/node/c"];
const BACKLOG = 20;
const LIVE = 30;

let server: TestServer | undefined;
const buses: MessageBus[] = [];
afterEach(async () => {
  for (const b of buses.splice(0)) b.stop();
  await server?.close();
  server = undefined;
});

/** A real server and real transports, reconnects and switches included: the waits' safety net. */
const WAIT_MS = 15_000;

type Got = Record<string, { data: unknown; globalId: number; messageId: number }[]>;

function follow(bus: MessageBus | typeof DefaultBus, channels: string[], lastId: number): Got {
  const got: Got = {};
  for (const ch of channels) {
    got[ch] = [];
    bus.subscribe(ch, (data, globalId, messageId) => got[ch].push({ data, globalId, messageId }), lastId);
  }
  return got;
}

async function publishRound(s: TestServer, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) for (const ch of CHANNELS) await s.bus.publish(ch, { ch, i });
}

function expectExact(got: Got, total: number): void {
  for (const ch of CHANNELS) {
    expect(got[ch].map((m) => m.messageId)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(got[ch].map((m) => m.data)).toEqual(Array.from({ length: total }, (_, i) => ({ ch, i })));
  }
}

describe.each(["websocket", "sse", "long-poll", "poll"] as TransportName[])("Node client over %s alone", (transport) => {
  it("gets the backlog from 0, then live messages, in order, each once", async () => {
    server = await startServer({ longPollTimeout: 2000, heartbeatInterval: 1000 });
    const s = server;
    await publishRound(s, 0, BACKLOG);
    const bus = new MessageBus({ baseUrl: s.url + "/", transports: [transport], callbackInterval: 50, heartbeatInterval: 1000 });
    buses.push(bus);
    const seen: TransportName[] = [];
    bus.onTransport((n) => seen.push(n));
    const got = follow(bus, CHANNELS, 0);
    await waitFor(() => CHANNELS.every((ch) => got[ch].length === BACKLOG), () => `the backlog on every channel (${JSON.stringify(bus.stats)})`, WAIT_MS);
    await publishRound(s, BACKLOG, LIVE);
    await waitFor(() => CHANNELS.every((ch) => got[ch].length >= BACKLOG + LIVE), () => `backlog and live messages on every channel (${JSON.stringify(bus.stats)})`, WAIT_MS);
    // Anything doubled would have arrived by now with the next batch.
    await new Promise((r) => setTimeout(r, 150));
    expectExact(got, BACKLOG + LIVE);
    expect(seen).toEqual([transport]);
    expect(bus.transport).toBe(transport);
    expect(bus.epoch).toBe(s.bus.backend.epoch);
    // What the server sees connected: only the forced transport (a poll is never held).
    const held = () => s.bus.stats().subscribers as Record<string, number>;
    const kind = transport === "long-poll" ? "chunked" : transport;
    // A long-poll is between two requests now and then.
    if (transport !== "poll") await waitFor(() => held()[kind] === 1, () => `one ${kind} subscriber held (${JSON.stringify(held())})`, WAIT_MS);
    for (const k of ["long-poll", "chunked", "sse", "websocket"]) expect([k, held()[k]]).toEqual([k, k === kind ? 1 : 0]);
  });
});

describe("Node client, default negotiation", () => {
  it("starts on long-poll, takes over on WebSocket, and delivers without loss or duplicates", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    const s = server;
    await publishRound(s, 0, BACKLOG);
    const bus = new MessageBus({ baseUrl: s.url + "/", callbackInterval: 50 });
    buses.push(bus);
    const seen: TransportName[] = [];
    bus.onTransport((n) => seen.push(n));
    const got = follow(bus, CHANNELS, 0);
    await waitFor(() => bus.transport === "websocket", () => `websocket (on ${bus.transport})`, WAIT_MS);
    await publishRound(s, BACKLOG, LIVE);
    await waitFor(() => CHANNELS.every((ch) => got[ch].length >= BACKLOG + LIVE), () => `backlog and live messages on every channel (${JSON.stringify(bus.stats)})`, WAIT_MS);
    await new Promise((r) => setTimeout(r, 150));
    expectExact(got, BACKLOG + LIVE);
    expect(seen[0]).toBe("long-poll");
    expect(seen[seen.length - 1]).toBe("websocket");
    expect(bus.stats.transportSwitches).toBe(seen.length - 1);
  });

  it("the default instance works like message-bus-client's global, and -1 means new messages only", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    const s = server;
    await publishRound(s, 0, 3);
    buses.push(DefaultBus as unknown as MessageBus);
    DefaultBus.baseUrl = s.url + "/";
    DefaultBus.transports = ["sse"];
    expect(DefaultBus.status()).toBe("stopped");
    const got = follow(DefaultBus, CHANNELS, -1);
    expect(DefaultBus.status()).toBe("started");
    await waitFor(() => DefaultBus.transport === "sse", () => `sse (on ${DefaultBus.transport})`, WAIT_MS);
    await waitFor(() => CHANNELS.every((ch) => DefaultBus.subscription()[ch] === 3), () => `position 3 on every channel (${JSON.stringify(DefaultBus.subscription())})`, WAIT_MS);
    await publishRound(s, 3, 2);
    await waitFor(() => CHANNELS.every((ch) => got[ch].length >= 2), () => `2 messages on every channel (${JSON.stringify(got)})`, WAIT_MS);
    for (const ch of CHANNELS) expect(got[ch].map((m) => [m.messageId, m.data])).toEqual([[4, { ch, i: 3 }], [5, { ch, i: 4 }]]);
    expect(DefaultBus.unsubscribe("/node/*")).toBe(true);
    expect(DefaultBus.channels()).toEqual([]);
    expect(new DefaultBus({ clientId: "other" })).toBeInstanceOf(DefaultBus);
  });
});

describe.each(["websocket", "sse", "long-poll", "poll"] as TransportName[])("Node client over %s: the subscription changes", (transport) => {
  it("server reset (new epoch): onReset for every channel, then the new epoch's messages from id 1", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    const s = server;
    await publishRound(s, 0, 5);
    const bus = new MessageBus({ baseUrl: s.url + "/", transports: [transport], callbackInterval: 50 });
    buses.push(bus);
    const resets: string[] = [];
    bus.onReset((ch) => resets.push(ch));
    const got = follow(bus, CHANNELS, 0);
    await waitFor(() => CHANNELS.every((ch) => got[ch].length === 5), () => `5 messages on every channel (${JSON.stringify(bus.stats)})`, WAIT_MS);
    const before = bus.epoch;
    await s.bus.reset();
    for (const ch of CHANNELS) got[ch] = [];
    await publishRound(s, 0, 4);
    await waitFor(() => CHANNELS.every((ch) => got[ch].length >= 4), () => `4 messages on every channel (${JSON.stringify(got)})`, WAIT_MS);
    await new Promise((r) => setTimeout(r, 150));
    expectExact(got, 4);
    expect(resets.sort()).toEqual([...CHANNELS].sort());
    expect(bus.epoch).not.toBe(before);
    expect(bus.epoch).toBe(s.bus.backend.epoch);
  });

  it("channels added, one callback removed, and pause/resume, on a live connection", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    const s = server;
    const bus = new MessageBus({ baseUrl: s.url + "/", transports: [transport], callbackInterval: 50 });
    buses.push(bus);
    const a1: number[] = [];
    const a2: number[] = [];
    const b: number[] = [];
    const fn1 = (_d: unknown, _g: number, id: number) => a1.push(id);
    bus.subscribe("/live/a", fn1, 0);
    bus.subscribe("/live/a", (_d, _g, id) => a2.push(id), 0);
    await waitFor(() => bus.transport === transport && bus.subscription()["/live/a"] === 0, () => `${transport} subscribed to /live/a (on ${bus.transport})`, WAIT_MS);
    await s.bus.publish("/live/a", 1);
    await waitFor(() => a1.length === 1 && a2.length === 1, () => `one message for each callback (${a1} ${a2})`, WAIT_MS);
    // Published before the subscription: lastId 0 brings it from the backlog.
    await s.bus.publish("/live/b", "early");
    bus.subscribe("/live/b", (_d, _g, id) => b.push(id), 0);
    expect(bus.unsubscribe("/live/a", fn1)).toBe(true);
    await s.bus.publish("/live/a", 2);
    await s.bus.publish("/live/b", "late");
    await waitFor(() => a2.length === 2 && b.length === 2, () => `two messages for a2 and b (${a2} ${b})`, WAIT_MS);
    expect(bus.channels()).toEqual(["/live/a", "/live/b"]);

    bus.pause();
    expect(bus.status()).toBe("paused");
    for (let i = 0; i < 3; i++) await s.bus.publish("/live/b", i);
    // Positions move on while paused (nothing is asked for twice); callbacks wait.
    await waitFor(() => bus.subscription()["/live/b"] === 5, () => `/live/b at 5 (${JSON.stringify(bus.subscription())})`, WAIT_MS);
    expect(b).toEqual([1, 2]);
    bus.resume();
    expect(b).toEqual([1, 2, 3, 4, 5]);
    await new Promise((r) => setTimeout(r, 100));
    expect(a1).toEqual([1]);
    expect(a2).toEqual([1, 2]);
    expect(b).toEqual([1, 2, 3, 4, 5]);
  });
});
