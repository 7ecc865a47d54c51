import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { chunkedPoll, longPoll, parse, poll, sse, WsClient, wsUrl, type SseEvent } from "./fixtures/clients.js";
import { heldPoll, startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

let server: TestServer;
afterEach(async () => {
  await server?.close();
});

async function publishN(ch: string, n: number, opts: { maxBacklogSize?: number } = {}): Promise<void> {
  for (let i = 0; i < n; i++) await server.bus.publish(ch, `m${i + 1}`, opts);
}

const status = (data: Record<string, unknown>) => ({ global_id: -1, message_id: -1, channel: "/__status", data });
const msg = (ch: string, id: number) => expect.objectContaining({ channel: ch, message_id: id, data: `m${id}` });
const ids = (ms: Message[], ch: string) => ms.filter((m) => m.channel === ch).map((m) => m.message_id);

describe("lastId semantics (poll)", () => {
  it("-1 answers only where the channel stands, byte-exact as message_bus", async () => {
    server = await startServer();
    await publishN("/p", 5);
    const a = await poll(server.base, "c1", { "/p": -1 });
    expect(a.status).toBe(200);
    expect(a.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(a.headers.get("cache-control")).toBe("no-cache, no-store, no-transform");
    expect(a.text).toBe('[{"global_id":-1,"message_id":-1,"channel":"/__status","data":{"/p":5}}]');
  });

  it("-3 gives the last 2, -10 everything retained, 0 everything, k everything after k", async () => {
    server = await startServer();
    await publishN("/p", 5);
    expect(parse((await poll(server.base, "c1", { "/p": -3 })).text)).toEqual([msg("/p", 4), msg("/p", 5)]);
    expect(ids(parse((await poll(server.base, "c1", { "/p": -10 })).text), "/p")).toEqual([1, 2, 3, 4, 5]);
    expect(ids(parse((await poll(server.base, "c1", { "/p": 0 })).text), "/p")).toEqual([1, 2, 3, 4, 5]);
    expect(parse((await poll(server.base, "c1", { "/p": 3 })).text)).toEqual([msg("/p", 4), msg("/p", 5)]);
    expect(parse((await poll(server.base, "c1", { "/p": 5 })).text)).toEqual([]);
    // A channel never published to: -1 is told 0, 0 gets nothing.
    expect(parse((await poll(server.base, "c1", { "/never": -1 })).text)).toEqual([status({ "/never": 0 })]);
    expect(parse((await poll(server.base, "c1", { "/never": 0 })).text)).toEqual([]);
  });

  it("the same subscription as JSON (message-bus-client with contentType json) reads the same", async () => {
    server = await startServer();
    await publishN("/p", 3);
    const a = await poll(server.base, "c1", { "/p": 1 }, { json: true });
    expect(parse(a.text)).toEqual([msg("/p", 2), msg("/p", 3)]);
  });

  it("beyond the last id after bus.reset(): like -1, with the channel in __reset", async () => {
    server = await startServer();
    await publishN("/p", 5);
    await server.bus.reset();
    await publishN("/p", 2);
    const a = parse((await poll(server.base, "c1", { "/p": 5, "/q": 0 })).text);
    expect(a).toEqual([status({ "/p": 2, __reset: ["/p"] })]);
    // The client, now at 2, gets what follows normally.
    await publishN("/p", 1);
    expect(parse((await poll(server.base, "c1", { "/p": 2 })).text)).toEqual([
      expect.objectContaining({ channel: "/p", message_id: 3, data: "m1" }),
    ]);
  });
});

describe("__epoch", () => {
  it("positions from another epoch get the whole new backlog and __reset; the same epoch resumes", async () => {
    server = await startServer();
    await publishN("/p", 3);
    const epoch = server.bus.backend.epoch;
    const other = parse((await poll(server.base, "c1", { "/p": 2 }, { extra: { __epoch: "oldepoch" } })).text);
    expect(other).toEqual([msg("/p", 1), msg("/p", 2), msg("/p", 3), status({ "/p": 3, __epoch: epoch, __reset: ["/p"] })]);
    const same = parse((await poll(server.base, "c1", { "/p": 2 }, { extra: { __epoch: epoch } })).text);
    expect(same).toEqual([msg("/p", 3)]);
  });

  it("over WebSocket: the welcome names the epoch, another epoch gets the whole backlog", async () => {
    server = await startServer();
    await publishN("/p", 3);
    const ws = new WsClient(wsUrl(server.base, "w1"));
    try {
      await ws.opened;
      await ws.until(() => ws.frames.length >= 1);
      // The welcome: the epoch, and how widely to spread a reconnection if the socket is cut (one connection: 2 ms).
      expect(ws.frames[0]).toEqual([status({ __epoch: server.bus.backend.epoch, __spread: 2 })]);
      ws.send({ subscribe: { "/p": 3, __epoch: "oldepoch" } });
      await ws.until(() => ws.frames.length >= 2);
      expect(ws.frames[1]).toEqual([
        msg("/p", 1),
        msg("/p", 2),
        msg("/p", 3),
        status({ "/p": 3, __epoch: server.bus.backend.epoch, __reset: ["/p"] }),
      ]);
    } finally {
      ws.close();
    }
  });

  it("a reset while connected tells every live transport (__reset) and restarts its channels at 0", async () => {
    server = await startServer({ longPollTimeout: 5000 });
    await publishN("/p", 2);
    const ws = new WsClient(wsUrl(server.base, "w1"));
    const sseEvents: SseEvent[] = [];
    const ac = new AbortController();
    try {
      await ws.opened;
      ws.send({ subscribe: { "/p": 2 } });
      await ws.until(() => ws.frames.length >= 2);
      let sseReady!: () => void;
      const sseOpen = new Promise<void>((r) => (sseReady = r));
      const sseDone = sse(`${server.base}/s1/sse?/p=2`, (e) => {
        sseEvents.push(e);
        sseReady();
        return sseEvents.length >= 3;
      }, { signal: ac.signal });
      await sseOpen;
      const held = longPoll(server.base, "l1", { "/p": 2 });
      await waitFor(() => server.bus.stats().subscribers["long-poll"] === 1, "the long-poll held");
      await server.bus.reset();
      const epoch = server.bus.backend.epoch;
      await server.bus.publish("/p", "after reset");
      const expected = status({ __epoch: epoch, __reset: ["/p"], "/p": 0 });
      expect(parse((await held).text)).toEqual([expected]);
      await ws.until(() => ws.frames.length >= 4);
      expect(ws.frames[2]).toEqual([expected]);
      expect(ws.frames[3]).toEqual([expect.objectContaining({ channel: "/p", message_id: 1, data: "after reset" })]);
      await sseDone;
      expect(JSON.parse(sseEvents[1].data)).toEqual(expected);
      expect(sseEvents[1].id).toBe(`${epoch}:0`);
      expect(JSON.parse(sseEvents[2].data)).toMatchObject({ channel: "/p", message_id: 1, data: "after reset" });
      expect(sseEvents[2].id).toBe(`${epoch}:1`);
    } finally {
      ws.close();
      ac.abort();
    }
  });
});

describe("trimming", () => {
  it("a gap before the first retained message is reported with __reset, never hidden", async () => {
    server = await startServer({ maxBacklogSize: 5 });
    await publishN("/p", 10);
    const a = parse((await poll(server.base, "c1", { "/p": 2 })).text);
    expect(a).toEqual([6, 7, 8, 9, 10].map((i) => msg("/p", i)).concat([status({ "/p": 10, __reset: ["/p"] })]));
    // Nothing lost after 5: no reset.
    expect(parse((await poll(server.base, "c1", { "/p": 5 })).text)).toEqual([6, 7, 8, 9, 10].map((i) => msg("/p", i)));
  });

  it("per-message maxBacklogSize trims too, on every transport's catch-up", async () => {
    server = await startServer();
    await publishN("/p", 4);
    await publishN("/q", 1);
    await server.bus.publish("/p", "m5", { maxBacklogSize: 2 });
    const expected = [msg("/p", 4), msg("/p", 5), status({ "/p": 5, __reset: ["/p"] })];
    expect(parse((await poll(server.base, "c1", { "/p": 1 })).text)).toEqual(expected);
    expect(parse((await longPoll(server.base, "c1", { "/p": 1 })).text)).toEqual(expected);
    const chunks: Message[][] = [];
    await chunkedPoll(server.base, "c1", { "/p": 1 }, (c) => (chunks.push(c), true));
    expect(chunks[0]).toEqual(expected);
    const ws = new WsClient(wsUrl(server.base, "w1"));
    try {
      await ws.opened;
      ws.send({ subscribe: { "/p": 1 } });
      await ws.until(() => ws.frames.length >= 2);
      expect(ws.frames[1]).toEqual(expected);
    } finally {
      ws.close();
    }
    const events: SseEvent[] = [];
    await sse(`${server.base}/s1/sse?/p=1`, (e) => (events.push(e), events.length >= 3));
    expect(JSON.parse(events[0].data)).toEqual(status({ __epoch: server.bus.backend.epoch, __spread: expect.any(Number), __reset: ["/p"], "/p": 1 }));
    expect(events.slice(1).map((e) => JSON.parse(e.data))).toEqual([msg("/p", 4), msg("/p", 5)]);
  });
});

describe("__seq replacement", () => {
  it("a newer long-poll with the same client id answers the older with []; an older seq is answered at once", async () => {
    server = await startServer({ longPollTimeout: 10_000 });
    const first = longPoll(server.base, "same", { "/p": 0 }, { extra: { __seq: 2 } });
    await waitFor(() => server.bus.stats().subscribers["long-poll"] === 1, "the long-poll held");
    const second = longPoll(server.base, "same", { "/p": 0 }, { extra: { __seq: 3 } });
    const a = await first;
    expect(a.status).toBe(200);
    expect(a.text).toBe("[]");
    await waitFor(() => heldPoll(server.bus, "same")?.seq === 3, "the poll with __seq 3 held");
    const stale = await longPoll(server.base, "same", { "/p": 0 }, { extra: { __seq: 1 } });
    expect(stale.text).toBe("[]");
    // The newest is still held and gets the message.
    await server.bus.publish("/p", "m1");
    expect(parse((await second).text)).toEqual([msg("/p", 1)]);
    // Another client id is independent.
    const other = longPoll(server.base, "other", { "/p": 1 }, { extra: { __seq: 1 } });
    await waitFor(() => server.bus.stats().subscribers["long-poll"] === 1, "the long-poll held");
    await server.bus.publish("/p", "m2");
    expect(parse((await other).text)).toEqual([msg("/p", 2)]);
  });

  it("a chunked long-poll replaced by a newer one ends with a [] chunk", async () => {
    server = await startServer({ longPollTimeout: 10_000 });
    const chunks: Message[][] = [];
    let firstChunk!: () => void;
    const gotFirst = new Promise<void>((r) => (firstChunk = r));
    const first = chunkedPoll(server.base, "same", { "/p": 0 }, (c) => {
      chunks.push(c);
      firstChunk();
    }, { extra: { __seq: 1 } });
    await gotFirst;
    const second = chunkedPoll(server.base, "same", { "/p": 0 }, () => true, { extra: { __seq: 2 } });
    const r = await first;
    expect(r.raw).toBe("[]\r\n|\r\n[]\r\n|\r\n");
    expect(chunks).toEqual([[], []]);
    await second;
  });
});

describe("SSE resume", () => {
  it("Last-Event-ID resumes every channel exactly, also after messages published while away", async () => {
    server = await startServer();
    await publishN("/a", 2);
    await publishN("/b", 1);
    const first: SseEvent[] = [];
    await sse(`${server.base}/s1/sse?/a=0&/b=0`, (e) => (first.push(e), first.length >= 4));
    // status, /a 1, /a 2, /b 1 (global order)
    const lastSeen = first[3].id!;
    expect(lastSeen).toBe(`${server.bus.backend.epoch}:2,1`);
    await server.bus.publish("/b", "m2");
    await server.bus.publish("/a", "m3");
    const second: SseEvent[] = [];
    await sse(`${server.base}/s1/sse?/a=0&/b=0`, (e) => (second.push(e), second.length >= 3), {
      headers: { "Last-Event-ID": lastSeen },
    });
    expect(second.slice(1).map((e) => JSON.parse(e.data))).toEqual([msg("/b", 2), msg("/a", 3)]);
    expect(second.slice(1).map((e) => e.id)).toEqual([`${server.bus.backend.epoch}:2,2`, `${server.bus.backend.epoch}:3,2`]);
  });
});
