import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { MessageBus } from "../server/index.js";
import { demoApp } from "../server/demo.js";
import type { Listening } from "../server/node/listen.js";

/** The demo server's own routes, on a real server: publishing, bad input, and cutting connections. */
describe("demo routes", () => {
  let bus: MessageBus;
  let server: Listening;

  beforeAll(async () => {
    bus = new MessageBus({ onError: () => {} });
    await bus.ready();
    server = await bus.listen(0, "127.0.0.1", demoApp(bus));
  });
  afterAll(() => server?.close());

  const post = (path: string, body?: unknown) =>
    fetch(server.url + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });

  it("publishes one message, or a burst whose copies carry their index", async () => {
    const one = await post("/demo/publish", { channel: "/r/one", data: { a: 1 } });
    expect([one.status, await one.json()]).toEqual([200, { global_id: 1, message_id: 1 }]);
    const burst = await post("/demo/publish", { channel: "/r/burst", data: { uid: "x" }, count: 3 });
    expect([burst.status, await burst.json()]).toEqual([200, { global_id: 4, message_id: 3 }]);
    const copies = (await bus.backlog("/r/burst")).map((m) => m.data as { uid: string; i: number; after: number });
    expect(copies.map(({ uid, i }) => ({ uid, i }))).toEqual([
      { uid: "x", i: 0 },
      { uid: "x", i: 1 },
      { uid: "x", i: 2 },
    ]);
    expect(copies[0].after).toBeGreaterThanOrEqual(0);
    // Published one after another: each copy no earlier than the one before.
    expect(copies.every((c, k) => typeof c.after === "number" && (k === 0 || c.after >= copies[k - 1].after))).toBe(true);
    const last = await fetch(`${server.url}/demo/last-id?channel=${encodeURIComponent("/r/burst")}`);
    expect(await last.json()).toEqual({ last_id: 3, epoch: bus.backend.epoch });
  });

  it("chat: a line is said in the speaker's own name only; presence takes publishes in one's own name only", async () => {
    const ask = (clientId: string, user: string | null, body: unknown) =>
      fetch(`${server.url}/message-bus/${clientId}/request`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(user ? { cookie: `demo_user=${user}` } : {}) },
        body: JSON.stringify(body),
      }).then(async (r) => [r.status, await r.json()]);
    expect(await ask("chat-a", null, { id: 1, method: "say", data: { text: "hi" } })).toEqual([401, { id: 1, status: 401, error: "join the chat first: no name" }]);
    expect(await ask("chat-a", "alice", { id: 2, method: "say", data: { text: "  hi  ", from: "mallory" } })).toEqual([200, { id: 2, status: 200, data: { messageId: 1 } }]);
    expect((await bus.backlog("/chat/room")).map((m) => m.data)).toEqual([{ type: "say", from: "alice", text: "hi", sentAt: expect.any(Number) }]);
    expect(await ask("chat-a", "alice", { id: 3, method: "say", data: { text: "" } })).toEqual([400, { id: 3, status: 400, error: "a line is 1-2000 characters of text" }]);
    const presence = (id: number, from: string) => ({ id, method: "__publish", data: { channel: "/chat/presence", data: { type: "here", from, at: 1 } } });
    expect((await ask("chat-a", "alice", presence(4, "alice")))[0]).toBe(200);
    expect(await ask("chat-a", "alice", presence(5, "bob"))).toEqual([403, { id: 5, status: 403, error: 'publishing to "/chat/presence" is not allowed' }]);
    expect((await ask("chat-a", "alice", { id: 6, method: "__publish", data: { channel: "/chat/room", data: { from: "alice" } } }))[0]).toBe(403);
  });

  it("answers bad input with a status and a JSON error", async () => {
    const cases: Array<[Promise<Response>, number, string]> = [
      [post("/demo/publish", "nope"), 400, "invalid JSON body"],
      [post("/demo/publish", "null"), 400, 'publish takes {"channel": "/x", "data": …}'],
      [post("/demo/publish", { channel: "/x", data: 1, count: 0 }), 400, "count must be an integer from 1 to 1000"],
      [post("/demo/publish", { channel: "/x", data: 1, count: 1001 }), 400, "count must be an integer from 1 to 1000"],
      [post("/demo/publish", { channel: "/x", data: 1, count: 1.5 }), 400, "count must be an integer from 1 to 1000"],
      [post("/demo/publish", { channel: "/x", data: 1, user_ids: "7" }), 400, "userIds must be an array of strings or numbers"],
      [post("/demo/drop?kind=everything"), 400, "kind must be one of websocket, sse, chunked, long-poll, streams, polls"],
      [post("/demo/drop"), 400, "kind must be one of websocket, sse, chunked, long-poll, streams, polls"],
      [fetch(`${server.url}/demo/last-id`), 400, "channel is required: /demo/last-id?channel=/x"],
      [fetch(`${server.url}/no-such-page.html`), 404, "not found"],
    ];
    for (const [res, status, error] of cases) {
      const r = await res;
      expect([r.status, await r.json()]).toEqual([status, { error }]);
    }
    const badChannel = await post("/demo/publish", { channel: "no-slash", data: 1 });
    expect(badChannel.status).toBe(400);
    expect((await badChannel.json()).error).toMatch(/^bad channel "no-slash"/);
  });

  it("drops WebSockets without a close frame, and only those", async () => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/message-bus/drop-me/ws`);
    const frames: string[] = [];
    ws.on("message", (d) => frames.push(String(d)));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    ws.send(JSON.stringify({ subscribe: { "/r/ws": -1 } }));
    await expect.poll(() => frames.length).toBe(2); // welcome, then the subscription's answer
    // A held long-poll of another client must survive a WebSocket drop.
    const held = fetch(`${server.url}/message-bus/keep-me/poll`, {
      method: "POST",
      headers: { "content-type": "application/json", "dont-chunk": "true" },
      body: JSON.stringify({ "/r/ws": 0 }),
    });
    await expect.poll(() => bus.stats().subscribers["long-poll"]).toBe(1);

    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    const res = await post("/demo/drop?kind=websocket");
    expect(await res.json()).toEqual({ kind: "websocket", dropped: 1 });
    expect(await closed).toBe(1006); // abnormal closure: the socket just went away
    expect(bus.stats().subscribers).toMatchObject({ websocket: 0, "long-poll": 1 });

    await bus.publish("/r/ws", "wake the long-poll");
    const answer = await (await held).json();
    expect(answer.map((m: { data: unknown }) => m.data)).toEqual(["wake the long-poll"]);
  });

  it("cuts SSE streams mid-response", async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}/message-bus/cut-me/sse?${encodeURIComponent("/r/sse")}=-1`, { signal: controller.signal });
    const reader = res.body!.getReader();
    await reader.read(); // the preamble and status: the stream is open
    expect(bus.stats().subscribers.sse).toBe(1);
    const drop = await post("/demo/drop?kind=streams");
    expect(await drop.json()).toEqual({ kind: "streams", dropped: 1 });
    // Cut, not ended: the chunked body stops without its terminating chunk.
    await expect(
      (async () => {
        for (;;) if ((await reader.read()).done) return "ended cleanly";
      })(),
    ).rejects.toThrow();
    await expect.poll(() => bus.stats().subscribers.sse).toBe(0);
    controller.abort();
  });
});
