import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { chunkedPoll, longPoll, parse, poll, sse, WsClient, wsUrl, type SseEvent } from "./fixtures/clients.js";
import { follow, TRANSPORTS } from "./fixtures/follow.js";
import { RacingBackend } from "./fixtures/racing-backend.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});


const subscribers = () => server!.bus.stats().subscribers;
const total = () => Object.values(subscribers()).reduce((a, b) => a + b, 0);

describe.each(TRANSPORTS)("%s: a message published while the backlog is read", (transport) => {
  it.each([
    ["after the snapshot", "snapshot"],
    ["during the backlog read", "backlog"],
  ] as const)("%s arrives exactly once", async (_label, at) => {
    const backend = new RacingBackend();
    server = await startServer({ backend, longPollTimeout: 2000 });
    const bus = server.bus;
    await bus.publish("/r", "m1");
    await bus.publish("/r", "m2");
    backend.at = at;
    backend.race = async () => {
      await bus.publish("/r", "m3");
      await new Promise((r) => setImmediate(r));
    };
    // Once m3 is in, m4 is published: any late duplicate of m3 would have to arrive before it.
    let sentM4 = false;
    const until = (x: { messages: Message[] }) => {
      if (!sentM4 && x.messages.some((m) => m.data === "m3")) {
        sentM4 = true;
        void bus.publish("/r", "m4");
      }
      return x.messages.some((m) => m.data === "m4");
    };
    const f = await follow(transport, server.base, `race-${transport}`, { "/r": 1 }, until);
    expect(f.messages.map((m) => [m.message_id, m.data])).toEqual([
      [2, "m2"],
      [3, "m3"],
      [4, "m4"],
    ]);
  });
});

describe("clients that leave are forgotten", () => {
  it("an aborted long-poll, chunked poll, SSE stream and a dropped WebSocket leave no subscriber behind", async () => {
    server = await startServer({ longPollTimeout: 30_000 });
    const ac = new AbortController();
    const held = longPoll(server.base, "gone-lp", { "/g": -1, "/h": 0 }, { signal: ac.signal }).catch(() => null);
    const chunked = chunkedPoll(server.base, "gone-ch", { "/g": 0 }, () => {}, { signal: ac.signal }).catch(() => null);
    const stream = sse(`${server.base}/gone-sse?/g=0`, () => {}, { signal: ac.signal }).catch(() => null);
    const streamOk = sse(`${server.base}/gone-sse/sse?/g=0`, () => {}, { signal: ac.signal }).catch(() => null);
    const ws = new WsClient(wsUrl(server.base, "gone-ws"));
    await ws.opened;
    ws.send({ subscribe: { "/g": 0 } });
    await ws.until(() => ws.frames.length >= 2);
    // The -1 long-poll answers at once with its status; ask again, now held.
    await held;
    const held2 = longPoll(server.base, "gone-lp", { "/g": 0 }, { signal: ac.signal }).catch(() => null);
    await waitFor(() => {
      const s = subscribers();
      return s["long-poll"] === 1 && s.chunked === 1 && s.sse === 1 && s.websocket === 1;
    }, "every kind connected");
    ac.abort();
    ws.close();
    await Promise.all([held2, chunked, stream, streamOk]);
    await waitFor(() => total() === 0, "every subscriber gone");
    expect(server.bus.stats().channels).toBe(0);
    expect(server.bus.longPolls.size).toBe(0);
  });
});

describe("timeouts and heartbeats", () => {
  it("a long-poll answers [] at its timeout; a chunked one ends with a [] chunk", async () => {
    server = await startServer({ longPollTimeout: 150 });
    const a = await longPoll(server.base, "t1", { "/t": 0 });
    expect(a.text).toBe("[]");
    const r = await chunkedPoll(server.base, "t2", { "/t": 0 }, () => {});
    expect(r.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(r.headers.get("x-accel-buffering")).toBe("no");
    expect(r.raw).toBe("[]\r\n|\r\n[]\r\n|\r\n");
    expect(total()).toBe(0);
  });

  it("SSE streams get ': hb' comments and WebSockets [] frames", async () => {
    server = await startServer({ heartbeatInterval: 40 });
    const comments: string[] = [];
    const events: SseEvent[] = [];
    const ac = new AbortController();
    const done = sse(`${server.base}/hb/sse?/t=0`, (e) => void events.push(e), {
      signal: ac.signal,
      onComment: (c) => {
        comments.push(c);
        if (comments.length >= 3) ac.abort();
      },
    });
    const ws = new WsClient(wsUrl(server.base, "hb"));
    try {
      await ws.opened;
      ws.send({ subscribe: { "/t": 0 } });
      await ws.until(() => ws.frames.length >= 4, "two heartbeats");
      expect(ws.frames.slice(1, 4)).toEqual([[], [], []]);
      await done;
      // The preamble's comment, then heartbeats.
      expect(comments).toEqual(["cometbus", "hb", "hb"]);
      expect(events.length).toBe(1);
    } finally {
      ws.close();
      ac.abort();
    }
  });

  it("SSE sends the anti-buffering headers and the preamble at once", async () => {
    server = await startServer();
    const res = await fetch(`${server.base}/h/sse?/t=-1`);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache, no-store, no-transform");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    // The preamble comes first, before any store read; the head status (epoch, spread hint, where
    // each channel starts) right after.
    const first = decoder.decode((await reader.read()).value, { stream: true });
    expect(first.startsWith("retry: 1000\n: cometbus\n\n")).toBe(true);
    let text = first;
    while (!text.endsWith("}}\n\n")) text += decoder.decode((await reader.read()).value, { stream: true });
    const epoch = server.bus.backend.epoch;
    expect(text).toMatch(
      new RegExp(`^retry: 1000\\n: cometbus\\n\\nid: ${epoch}:0\\ndata: \\{"global_id":-1,"message_id":-1,"channel":"/__status","data":\\{"__epoch":"${epoch}","__spread":\\d+,"/t":0\\}\\}\\n\\n$`),
    );
    await reader.cancel();
  });
});

describe("shutdown and slow consumers", () => {
  it("bus.close() tells held polls, streams and sockets to move (each within the spread hint), then ends them", async () => {
    server = await startServer({ longPollTimeout: 30_000 });
    const held = longPoll(server.base, "c1", { "/s": 0 });
    const chunks: Message[][] = [];
    const chunked = chunkedPoll(server.base, "c2", { "/s": 0 }, (c) => void chunks.push(c));
    const stream = sse(`${server.base}/c3/sse?/s=0`, () => {});
    const ws = new WsClient(wsUrl(server.base, "c4"));
    await ws.opened;
    await waitFor(() => {
      const s = subscribers();
      return s["long-poll"] === 1 && s.chunked === 1 && s.sse === 1 && s.websocket === 1;
    }, "all connected");
    // Four connections at the default 500 reconnects/s: come back within 8 ms.
    const hint = server.bus.spreadMs();
    expect(hint).toBe(8);
    const closing = server.close();
    server = undefined;
    const drain = `[{"global_id":-1,"message_id":-1,"channel":"/__status","data":{"__drain":${hint}}}]`;
    expect((await held).text).toBe(drain);
    expect((await chunked).raw).toBe(`[]\r\n|\r\n${drain}\r\n|\r\n[]\r\n|\r\n`);
    expect((await stream).ended).toBe("server");
    expect(await ws.whenClosed()).toEqual({ code: 1012, reason: `service restart: reconnect within ${hint} ms` });
    await closing;
  });

  it("a publish that races the shutdown is told 503 with Retry-After, and nothing is logged", async () => {
    const errors: unknown[] = [];
    server = await startServer({ publishToken: "t", onError: (e) => errors.push(e) });
    await server.bus.close();
    // The HTTP server still takes requests for a moment (a drain's window, a deploy's last ones).
    const res = await fetch(`${server.base}/publish`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer t" },
      body: JSON.stringify({ channel: "/late", data: 1 }),
    });
    expect({ status: res.status, retry: res.headers.get("retry-after"), body: await res.json() }).toEqual({
      status: 503,
      retry: "1",
      body: { error: "cometbus: the bus is closed, message not published" },
    });
    await expect(server.bus.publish("/late", 1)).rejects.toMatchObject({ name: "BusClosedError", status: 503 });
    expect(errors).toEqual([]);
  });

  it("a WebSocket that does not read is cut with 1013 and resumes from its position", async () => {
    server = await startServer({ limits: { maxBufferedBytes: 256 * 1024 } });
    const ws = new WsClient(wsUrl(server.base, "slow"));
    try {
      await ws.opened;
      ws.send({ subscribe: { "/big": 0 } });
      await ws.until(() => ws.frames.length >= 2);
      // Stop reading: the kernel buffers fill, then the server's.
      (ws.ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
      const chunk = "y".repeat(60 * 1024);
      for (let i = 0; i < 200 && subscribers().websocket > 0; i++) {
        await server.bus.publish("/big", chunk);
        await new Promise((r) => setImmediate(r));
      }
      expect(subscribers().websocket).toBe(0);
      (ws.ws as unknown as { _socket: import("node:net").Socket })._socket.resume();
      expect(await ws.whenClosed()).toEqual({ code: 1013, reason: "slow consumer: reconnect and resume from the backlog" });
      // Resuming from the last id it saw gets exactly the rest.
      const seen = ws.messages().filter((m) => m.channel === "/big");
      const last = seen.length ? seen[seen.length - 1].message_id : 0;
      expect(seen.map((m) => m.message_id)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      const published = await server.bus.lastId("/big");
      const rest = parse((await poll(server.base, "slow", { "/big": last })).text);
      expect(rest.map((m) => m.message_id)).toEqual(Array.from({ length: published - last }, (_, i) => last + i + 1));
    } finally {
      ws.close();
    }
  });
});

describe("a slow SSE consumer", () => {
  it("is cut once its unsent buffer passes the limit, and its last event id resumes exactly", async () => {
    server = await startServer({ limits: { maxBufferedBytes: 256 * 1024 } });
    const bus = server.bus;
    const sock = connect(server.port, "127.0.0.1");
    let raw = "";
    let closed = false;
    sock.setEncoding("utf8");
    sock.on("data", (d) => (raw += d));
    sock.on("close", () => (closed = true));
    sock.write(`GET /message-bus/slow-sse/sse?%2Fbig=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    await waitFor(() => subscribers().sse === 1 && raw.includes("retry: 1000"), "stream open");
    sock.pause();
    const chunk = "s".repeat(60 * 1024);
    for (let i = 0; i < 300 && subscribers().sse > 0; i++) {
      await bus.publish("/big", chunk);
      await new Promise((r) => setImmediate(r));
    }
    expect(subscribers().sse).toBe(0);
    sock.resume();
    // The connection was destroyed, not ended: what it had not taken is freed at once.
    await waitFor(() => closed, "the server to drop the connection");
    expect(raw.endsWith("\r\n0\r\n\r\n")).toBe(false);
    // Every whole event that arrived is in order (an EventSource dispatches only whole ones).
    const ids = [...raw.matchAll(/id: (\w+):(\d+)\ndata: \{"global_id":\d+,"message_id":(\d+)[^\n]*\n\n/g)].map((m) => Number(m[3]));
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1));
    const last = ids.length ? ids[ids.length - 1] : 0;
    // What the client did not get waits in the backlog: its last event id resumes exactly.
    for (let i = 0; i < 3; i++) await bus.publish("/big", "after the cut");
    const published = await bus.lastId("/big");
    expect(last).toBeLessThanOrEqual(published - 3);
    const events: SseEvent[] = [];
    const epoch = bus.backend.epoch;
    await sse(`${server.base}/slow-sse/sse?/big=0`, (e) => (events.push(e), events.length >= 1 + published - last), {
      headers: { "Last-Event-ID": `${epoch}:${last}` },
    });
    expect(events.slice(1).map((e) => (JSON.parse(e.data) as Message).message_id)).toEqual(
      Array.from({ length: published - last }, (_, i) => last + i + 1),
    );
  });
});

describe("shutdown with an unresponsive WebSocket", () => {
  it("close() does not wait for a client that never answers the close frame", async () => {
    server = await startServer();
    const ws = new WsClient(wsUrl(server.base, "frozen"));
    try {
      await ws.opened;
      await ws.until(() => ws.frames.length >= 1);
      (ws.ws as unknown as { _socket: import("node:net").Socket })._socket.pause();
      const s = server;
      server = undefined;
      // ws's own closing timeout is 30 s; this test's 10 s limit catches a regression.
      await s.close();
      expect(s.server.listening).toBe(false);
      expect(s.bus.stats().subscribers.websocket).toBe(0);
    } finally {
      ws.close();
    }
  }, 10_000);
});
