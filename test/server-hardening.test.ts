import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { BackendUnavailableError, MemoryBackend, MessageBus, type Snapshot, type StoredMessage } from "../server/index.js";
import { longPoll, parse, poll, WsClient, wsUrl } from "./fixtures/clients.js";
import { follow, TRANSPORTS } from "./fixtures/follow.js";
import { raw, request } from "./fixtures/raw-tcp.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

/**
 * What an outsider's first hour found (each test fails on the code before the hardening): one frame
 * that ended the process, connections that stayed subscribed after they closed, memory a slow
 * reader could pin, a server-side subscription that died silently, and a handful of smaller holes.
 */
let server: TestServer | undefined;
const errors: unknown[] = [];
afterEach(async () => {
  await server?.close();
  server = undefined;
  errors.length = 0;
});

async function start(options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  server = await startServer({ onError: (e) => errors.push(e), ...options });
  return server;
}

/** One server in this process, on loopback: anything here happens well within this. */
const WAIT_MS = 5000;

const utf8 = (s: string) => Buffer.byteLength(s);
const subscribers = () => server!.bus.stats().subscribers;

/** The server still serves: a fresh WebSocket subscribes and receives a publish. */
async function stillDelivers(s: TestServer): Promise<void> {
  const ws = new WsClient(wsUrl(s.base, `alive-${Math.random().toString(36).slice(2)}`));
  try {
    await ws.opened;
    ws.send({ subscribe: { "/alive": -1 } });
    await ws.until(() => ws.frames.length >= 2, "the subscribe's answer");
    await s.bus.publish("/alive", "yes");
    await ws.until(() => ws.messages().some((m) => m.data === "yes"), "the publish");
  } finally {
    ws.close();
  }
}

describe("one WebSocket frame cannot end the process", () => {
  const long = "/" + "é".repeat(200); // 401 bytes: refused as a channel, and its quote passes 123 bytes
  it.each([
    ["a long non-ASCII channel", { [long]: -1 }],
    ["a long non-ASCII id", { "/ok": long }],
    ["a long non-ASCII __seq", { __seq: long }],
  ])("%s is refused with 1008 and a reason of at most 123 bytes of valid UTF-8", async (_what, subscribe) => {
    const s = await start();
    const ws = new WsClient(wsUrl(s.base, "crash"));
    await ws.opened;
    ws.send({ subscribe });
    const closed = await ws.whenClosed();
    expect(closed.code).toBe(1008);
    expect(closed.reason.length).toBeGreaterThan(0);
    expect(utf8(closed.reason)).toBeLessThanOrEqual(123);
    expect(closed.reason).not.toMatch(/\ufffd/); // cut at a code point, not inside one
    await stillDelivers(s);
    expect(errors).toEqual([]);
  });

  it("frames that ws itself refuses (too large, invalid UTF-8) close with a reason too", async () => {
    const s = await start({ limits: { maxFrameBytes: 1024 } });
    const big = new WsClient(wsUrl(s.base, "big"));
    await big.opened;
    big.send("x".repeat(5000)); // past ws's own maxPayload (4 × maxFrameBytes)
    expect(await big.whenClosed()).toEqual({ code: 1009, reason: "frame too large: at most 1024 bytes" });
    const bad = new WsClient(wsUrl(s.base, "utf8"));
    await bad.opened;
    // A text frame whose payload is not UTF-8, written by hand (the ws client would refuse to send it).
    (bad.ws as unknown as { _sender: { sendFrame(list: Buffer[], cb?: () => void): void } })._sender.sendFrame(
      [Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28])],
    );
    expect(await bad.whenClosed()).toEqual({ code: 1007, reason: "invalid UTF-8 in a text frame" });
    await stillDelivers(s);
  });

  it("HTTP error bodies that echo input stay short and well-formed", async () => {
    const s = await start();
    // Lone surrogates (each quoted as a 6-byte escape) and long multibyte text, as channel and as id.
    for (const body of [`{"/${"\\ud800".repeat(200)}": 0}`, `{"/ok": "${"한".repeat(3000)}"}`, JSON.stringify({ ["/" + "😀".repeat(5000)]: 0 })]) {
      const r = await fetch(`${s.base}/echo/poll?dlp=t`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
      expect(r.status).toBe(400);
      const { error } = (await r.json()) as { error: string };
      expect(utf8(error)).toBeLessThanOrEqual(300);
      expect(error).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
    }
  });
});

describe("a connection that closes takes its subscribers with it, queued or not", () => {
  const held: Record<string, (i: number) => string> = {
    sse: (i) => request("GET", `/message-bus/p${i}/sse?%2Forphan=-1`),
    chunked: (i) => request("POST", `/message-bus/p${i}/poll`, "/orphan=0", { "Content-Type": "application/x-www-form-urlencoded" }),
    "long-poll": (i) =>
      request("POST", `/message-bus/p${i}/poll`, "/orphan=0", { "Content-Type": "application/x-www-form-urlencoded", "Dont-Chunk": "true" }),
  };
  it.each(Object.keys(held))("%s: pipelined requests behind a held one register nothing, and all go with the connection", async (kind) => {
    const s = await start({ longPollTimeout: 30_000 });
    const kinds = kind as "sse" | "chunked" | "long-poll";
    const conns = Array.from({ length: 5 }, (_, c) => raw(s.port, Array.from({ length: 10 }, (_, i) => held[kind](c * 10 + i)).join("")));
    // One held response per connection; the nine behind each wait for their turn, unregistered.
    await waitFor(() => subscribers()[kinds] === 5, "the first of each connection held", WAIT_MS);
    await new Promise((r) => setTimeout(r, 200));
    expect(subscribers()[kinds]).toBe(5);
    for (const c of conns) c.socket.destroy();
    // Gone at once, not after the long-poll timeout.
    await waitFor(() => subscribers()[kinds] === 0, "every subscriber gone", 1000);
  });

  it("a pipelined long-poll is served when its turn comes", async () => {
    const s = await start({ longPollTimeout: 30_000 });
    const form = { "Content-Type": "application/x-www-form-urlencoded", "Dont-Chunk": "true" };
    const c = raw(s.port, request("POST", "/message-bus/a/poll", "/turn=0", form) + request("POST", "/message-bus/b/poll", "/turn=0", form));
    await waitFor(() => subscribers()["long-poll"] === 1, "the first held", WAIT_MS);
    await s.bus.publish("/turn", "m1");
    // The first is answered; then the second takes its turn and finds m1 in the backlog.
    await waitFor(() => (c.received().match(/"data":"m1"/g) ?? []).length === 2, "both answered", WAIT_MS);
    c.socket.destroy();
  });

  it("a stream followed by a pipelined request refused unread (413) still goes when its client does", async () => {
    const s = await start();
    const big = "x".repeat(70_000);
    const c = raw(s.port, request("GET", "/message-bus/st/sse?%2Fst=-1") + request("POST", "/message-bus/b/sse", big, { "Content-Type": "application/json" }));
    await waitFor(() => subscribers().sse === 1 || c.closed(), "the stream open", WAIT_MS);
    c.socket.destroy();
    await waitFor(() => subscribers().sse === 0, "the stream gone with its connection", 1000);
  });

  it("a connection with more than maxQueuedRequests waiting is closed", async () => {
    const s = await start({ limits: { maxQueuedRequests: 8 } });
    const c = raw(s.port, Array.from({ length: 20 }, (_, i) => request("GET", `/message-bus/q${i}/sse?%2Fq=-1`)).join(""));
    await waitFor(() => c.closed(), "the connection closed by the server", WAIT_MS);
    await waitFor(() => subscribers().sse === 0, "nothing left subscribed", WAIT_MS);
    // Pipelining itself is fine: eight short polls on one connection are all answered.
    const ok = raw(s.port, Array.from({ length: 8 }, (_, i) => request("POST", `/message-bus/k${i}/poll?dlp=t`, "/q=-1", { "Content-Type": "application/x-www-form-urlencoded" })).join(""));
    await waitFor(() => (ok.received().match(/HTTP\/1.1 200/g) ?? []).length === 8, "eight answers", WAIT_MS);
    ok.socket.destroy();
  });
});

describe("memory per slow reader stays near the buffered-bytes limit", () => {
  it.each(TRANSPORTS)("%s: a catch-up larger than a page arrives whole, in order, each once", async (transport) => {
    // Pages of 4 KiB: 2 × 150 messages of ~500 bytes take many pages (and, for polls, many polls).
    const s = await start({ limits: { maxBufferedBytes: 16 * 1024, maxMessageBytes: 16 * 1024 } });
    for (let i = 1; i <= 150; i++) {
      await s.bus.publish("/big/a", { i, pad: "a".repeat(480) });
      await s.bus.publish("/big/b", { i, pad: "b".repeat(480) });
    }
    const f = await follow(transport, s.base, `pages-${transport}`, { "/big/a": 0, "/big/b": 0 }, (x) => x.messages.length >= 300);
    for (const ch of ["/big/a", "/big/b"]) {
      expect(f.messages.filter((m) => m.channel === ch).map((m) => m.message_id)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    }
    expect(errors).toEqual([]);
  });

  it("a poll answers at most a page; the status names where the rest starts", async () => {
    const s = await start({ limits: { maxBufferedBytes: 16 * 1024, maxMessageBytes: 16 * 1024 } });
    for (let i = 1; i <= 100; i++) await s.bus.publish("/pp", { i, pad: "p".repeat(480) });
    const first = parse((await poll(s.base, "pp", { "/pp": 0 })).text);
    const got = first.filter((m) => m.channel === "/pp");
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(100);
    expect(Buffer.byteLength(JSON.stringify(got))).toBeLessThan(8 * 1024);
    // A channel asked at -N that the answer did not reach is told where it stands.
    const cut = parse((await poll(s.base, "pp2", { "/pp": 0, "/other": -5 })).text);
    const status = cut.find((m) => m.channel === "/__status");
    expect(status?.data).toMatchObject({ "/other": 0 });
  });

  it("a stream whose client takes nothing for maxStallMs is cut, its buffers freed", async () => {
    const s = await start({ limits: { maxBufferedBytes: 64 * 1024, maxMessageBytes: 32 * 1024, maxStallMs: 300 } });
    // 16 MB: more than the kernel's socket buffers take on loopback, so the server must wait on the client.
    for (let i = 0; i < 1000; i++) await s.bus.publish("/stall", "s".repeat(16_000));
    const c = raw(s.port, request("GET", "/message-bus/stall/sse?%2Fstall=0"));
    await waitFor(() => c.received().includes("retry: 1000"), "the stream open", WAIT_MS);
    c.socket.pause();
    await waitFor(() => subscribers().sse === 0, "the stalled stream cut", 10_000);
    c.socket.resume();
    await waitFor(() => c.closed(), "the connection destroyed", WAIT_MS);
  });

  it("a chunked long-poll that does not read is cut once its buffer passes the limit", async () => {
    const s = await start({ limits: { maxBufferedBytes: 64 * 1024, maxMessageBytes: 64 * 1024 }, longPollTimeout: 60_000 });
    const c = raw(s.port, request("POST", "/message-bus/slow/poll", "/live=-1", { "Content-Type": "application/x-www-form-urlencoded" }));
    await waitFor(() => subscribers().chunked === 1, "the chunked poll held", WAIT_MS);
    c.socket.pause();
    const chunk = "c".repeat(60 * 1024);
    for (let i = 0; i < 500 && subscribers().chunked > 0; i++) {
      await s.bus.publish("/live", chunk);
      await new Promise((r) => setImmediate(r));
    }
    expect(subscribers().chunked).toBe(0);
    c.socket.destroy();
  });
});

/** A memory backend whose snapshots fail `failures` times, as a store outage would. */
class FlakyBackend extends MemoryBackend {
  failures = 0;
  override async snapshot(channels: Iterable<string>): Promise<Snapshot> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error("store unavailable (test)");
    }
    return super.snapshot(channels);
  }
}

describe("server-side subscriptions and the flush", () => {
  it("a first catch-up that fails is retried until it succeeds, then delivers in order", async () => {
    const backend = new FlakyBackend();
    const s = await start({ backend });
    for (let i = 1; i <= 3; i++) await s.bus.publish("/s", i);
    backend.failures = 3;
    const got: StoredMessage[] = [];
    const stop = s.bus.subscribe("/s", (m) => got.push(m), 0);
    await s.bus.publish("/s", 4);
    await waitFor(() => got.length === 4, "everything, once the store answers", WAIT_MS);
    await s.bus.publish("/s", 5);
    await waitFor(() => got.length === 5, "live after the catch-up", WAIT_MS);
    expect(got.map((m) => m.message_id)).toEqual([1, 2, 3, 4, 5]);
    // One line for the outage, not one per attempt.
    expect(errors).toHaveLength(1);
    stop();
  });

  it("a subscriber whose write throws is closed and reported; the others still get the message", async () => {
    const s = await start();
    const a = new WsClient(wsUrl(s.base, "bad"));
    const b = new WsClient(wsUrl(s.base, "good"));
    await Promise.all([a.opened, b.opened]);
    for (const ws of [a, b]) ws.send({ subscribe: { "/f": -1 } });
    await Promise.all([a, b].map((ws) => ws.until(() => ws.frames.length >= 2, "subscribed")));
    const bad = [...s.bus.hub.subscribers].find((x) => x.who.clientId === "bad")!;
    bad.send = () => {
      throw new Error("broken socket (test)");
    };
    await s.bus.publish("/f", "one");
    await b.until(() => b.messages().some((m) => m.data === "one"), "the good one's message");
    expect(errors.map(String)).toEqual(["Error: broken socket (test)"]);
    await waitFor(() => !s.bus.hub.subscribers.has(bad), "the broken one closed", WAIT_MS);
    a.close();
    b.close();
  });
});

describe("smaller holes", () => {
  it("a client that leaves mid-body is not an error: nothing is logged", async () => {
    const s = await start();
    for (let i = 0; i < 30; i++) {
      const c = raw(s.port, request("POST", `/message-bus/gone${i}/poll`, "", { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": "10000" }) + "/a=1&".repeat(20));
      await new Promise((r) => setTimeout(r, 5));
      c.socket.destroy();
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(errors).toEqual([]);
  });

  it("__seq replacement stays within one identity: another user cannot answer or outbid a client's polls", async () => {
    const s = await start({ longPollTimeout: 30_000, userIdLookup: (c) => c.req.header("x-user") });
    const alice = { headers: { "x-user": "alice" } };
    const victim = longPoll(s.base, "victim", { "/seq": 0 }, { ...alice, extra: { __seq: 1 } });
    await waitFor(() => subscribers()["long-poll"] === 1, "alice's poll held", WAIT_MS);
    const mallory = longPoll(s.base, "victim", { "/seq": 0 }, { headers: { "x-user": "mallory" }, extra: { __seq: Number.MAX_SAFE_INTEGER } });
    await waitFor(() => subscribers()["long-poll"] === 2, "mallory's poll held beside it", WAIT_MS);
    await s.bus.publish("/seq", "hello");
    expect(parse((await victim).text).map((m) => m.data)).toEqual(["hello"]);
    // Alice's next poll is not outbid by mallory's huge __seq.
    await mallory;
    const outbid = longPoll(s.base, "victim", { "/seq": 1 }, { headers: { "x-user": "mallory" }, extra: { __seq: Number.MAX_SAFE_INTEGER } });
    await waitFor(() => subscribers()["long-poll"] === 1, "mallory's next poll held", WAIT_MS);
    const next = longPoll(s.base, "victim", { "/seq": 1 }, { ...alice, extra: { __seq: 2 } });
    await waitFor(() => subscribers()["long-poll"] === 2, "alice's next poll held beside it", WAIT_MS);
    await s.bus.publish("/seq", "again");
    expect(parse((await next).text).map((m) => m.data)).toEqual(["again"]);
    await outbid;
  });

  it("40 subscribe frames in one burst with an async authorize cannot pass the channel limit", async () => {
    const s = await start({ authorize: async () => (await new Promise((r) => setTimeout(r, 10)), true) });
    const ws = new WsClient(wsUrl(s.base, "burst"));
    await ws.opened;
    const frames = Array.from({ length: 40 }, (_, f) => JSON.stringify({ subscribe: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`/b${f}/${i}`, -1])) }));
    for (const frame of frames) ws.ws.send(frame);
    const closed = await ws.whenClosed();
    expect(closed.code).toBe(1008);
    expect(s.bus.stats().channels).toBeLessThanOrEqual(100);
  });

  it("an upgrade whose Host would move the routed path is refused with 400", async () => {
    const s = await start();
    const c = raw(
      s.port,
      request("GET", "/message-bus/attacker/ws", "", {
        Host: `127.0.0.1:${s.port}/message-bus/victim/ws?x=`,
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
      }),
    );
    await waitFor(() => c.closed(), "the answer", WAIT_MS);
    expect(c.received()).toMatch(/^HTTP\/1.1 400 /);
    expect(c.received()).toMatch(/"error":"bad request: invalid Host header/);
  });

  it("the publish token: Bearer in any case, compared whole", async () => {
    const s = await start({ publishToken: "s3cret" });
    const publish = (authorization: string) =>
      fetch(`${s.base}/publish`, { method: "POST", headers: { authorization, "content-type": "application/json" }, body: '{"channel":"/t","data":1}' });
    for (const ok of ["Bearer s3cret", "bearer s3cret", "BEARER   s3cret"]) expect((await publish(ok)).status).toBe(200);
    for (const bad of ["Bearer s3cre", "Bearer s3cretx", "Basic s3cret", "s3cret", "Bearer"]) expect((await publish(bad)).status).toBe(401);
  });

  it("every response says nosniff, and errors say no-store", async () => {
    const s = await start({ publishToken: "t", longPollTimeout: 50 });
    await s.bus.publish("/h", 1);
    const form = { "Content-Type": "application/x-www-form-urlencoded" };
    const answers: [string, Response][] = [
      ["poll", await fetch(`${s.base}/h/poll?dlp=t`, { method: "POST", headers: form, body: "/h=0" })],
      ["long-poll at once", await fetch(`${s.base}/h/poll`, { method: "POST", headers: { ...form, "Dont-Chunk": "t" }, body: "/h=0" })],
      ["long-poll held", await fetch(`${s.base}/h/poll`, { method: "POST", headers: { ...form, "Dont-Chunk": "t" }, body: "/h=1" })],
      ["chunked", await fetch(`${s.base}/h/poll`, { method: "POST", headers: form, body: "/h=1" })],
      ["stats", await fetch(`${s.base}/stats`)],
      ["publish", await fetch(`${s.base}/publish`, { method: "POST", headers: { authorization: "Bearer t" }, body: '{"channel":"/h","data":2}' })],
      ["options", await fetch(`${s.base}/h/poll`, { method: "OPTIONS" })],
      ["400", await fetch(`${s.base}/h/poll?dlp=t`, { method: "POST", headers: form, body: "nochannel=1" })],
      ["401", await fetch(`${s.base}/publish`, { method: "POST", body: "{}" })],
      ["404", await fetch(`${s.base}/nowhere`)],
      ["404 outside base", await fetch(`${s.url}/elsewhere`)],
      ["413", await fetch(`${s.base}/h/poll?dlp=t`, { method: "POST", headers: form, body: "x".repeat(70_000) })],
      ["426", await fetch(`${s.base}/h/ws`)],
    ];
    const ac = new AbortController();
    answers.push(["sse", await fetch(`${s.base}/h/sse?%2Fh=0`, { signal: ac.signal })]);
    for (const [what, res] of answers) {
      expect({ what, nosniff: res.headers.get("x-content-type-options") }).toEqual({ what, nosniff: "nosniff" });
      if (res.status >= 400) expect({ what, cache: res.headers.get("cache-control") }).toEqual({ what, cache: expect.stringMatching(/no-store/) });
      if (!what.startsWith("sse") && !what.startsWith("chunked")) await res.text();
    }
    ac.abort();
  });

  it("deeply nested data is bad input (400), not a server error", async () => {
    const s = await start({ publishToken: "t" });
    const deep = "[".repeat(20_000) + "]".repeat(20_000);
    const r = await fetch(`${s.base}/publish`, { method: "POST", headers: { authorization: "Bearer t" }, body: `{"channel":"/d","data":${deep}}` });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ error: expect.stringMatching(/nested too deeply/) });
    await expect(s.bus.publish("/d", { big: 1n })).rejects.toMatchObject({ name: "ProtocolError", status: 400 });
    expect(errors).toEqual([]);
  });

  it("the WebSocket Origin check counts the scheme: no plain-http page onto a secure server", async () => {
    const s = await start();
    const host = `127.0.0.1:${s.port}`;
    const upgrade = async (headers: Record<string, string>) => {
      const ws = new WsClient(wsUrl(s.base, "o"), { headers });
      try {
        await ws.opened;
        return "open";
      } catch (e) {
        return String(e);
      } finally {
        ws.close();
      }
    };
    expect(await upgrade({ Origin: `http://${host}`, "X-Forwarded-Proto": "https" })).toBe("Error: HTTP 403");
    expect(await upgrade({ Origin: `https://${host}`, "X-Forwarded-Proto": "https" })).toBe("open");
    // Plain: a page of either scheme on this host (https through a TLS-terminating proxy).
    expect(await upgrade({ Origin: `http://${host}` })).toBe("open");
    expect(await upgrade({ Origin: `https://${host}` })).toBe("open");
    expect(await upgrade({ Origin: `ftp://${host}` })).toBe("Error: HTTP 403");
  });
});

describe("message_bus channels: any text of 1-256 bytes that starts with the slash", () => {
  const names = ["/café bar", "/日本語/チャット", "/emoji😀", "/a&b=c?d#e%f+g", "/" + "é".repeat(127) + "x"];
  it.each(TRANSPORTS)("%s carries them exactly, in order", async (transport) => {
    const s = await start();
    for (const ch of names) await s.bus.publish(ch, { ch });
    const start0 = Object.fromEntries(names.map((ch) => [ch, 0]));
    const f = await follow(transport, s.base, `uni-${transport}`, start0, (x) => x.messages.length >= names.length);
    expect(f.messages.map((m: Message) => [m.channel, (m.data as { ch: string }).ch]).sort()).toEqual(names.map((ch) => [ch, ch]).sort());
  });
});

describe("what writing the protocol document turned up", () => {
  it("a stream of several pages tells where -1 channels start with its first page (a cut later loses nothing)", async () => {
    const s = await start({ limits: { maxBufferedBytes: 16 * 1024, maxMessageBytes: 16 * 1024 } });
    for (let i = 1; i <= 100; i++) await s.bus.publish("/pages", { i, pad: "p".repeat(480) });
    await s.bus.publish("/new", "before");
    const ws = new WsClient(wsUrl(s.base, "start"));
    await ws.opened;
    ws.send({ subscribe: { "/pages": 0, "/new": -1 } });
    await ws.until(() => ws.frames.length >= 2, "the first page");
    // The first page after the welcome names /new's start, long before the catch-up ends.
    const first = (ws.frames[1] as Message[]).find((m) => m.channel === "/__status");
    expect(first?.data).toMatchObject({ "/new": 1 });
    ws.close();
  });

  it("a 503 says the store is down, without the driver's words (hosts, ports)", async () => {
    const backend = new MemoryBackend();
    const s = await start({ backend });
    backend.snapshot = async () => {
      throw new BackendUnavailableError("Redis", new Error("connect ECONNREFUSED 10.0.0.5:6379"), "try again later");
    };
    const r = await poll(s.base, "down", { "/d": 0 });
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("1");
    expect(JSON.parse(r.text)).toEqual({ error: "the store is unavailable, try again later" });
  });

  it("HEAD's 405 carries the headers every error does", async () => {
    const s = await start();
    const r = await fetch(`${s.base}/h/poll`, { method: "HEAD" });
    expect(r.status).toBe(405);
    expect([r.headers.get("cache-control"), r.headers.get("x-content-type-options")]).toEqual(["no-store", "nosniff"]);
  });

  it("Dont-Chunk counts by its presence, even empty, as message_bus reads it", async () => {
    const s = await start({ longPollTimeout: 50 });
    const r = await fetch(`${s.base}/dc/poll`, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", "Dont-Chunk": "" }, body: "/dc=0" });
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8");
    await r.text();
  });

  it("maxQueuedRequests requests may wait behind the one being answered, one more closes the connection", async () => {
    const s = await start({ limits: { maxQueuedRequests: 3 } });
    const sse = (n: number) => Array.from({ length: n }, (_, i) => request("GET", `/message-bus/mq${i}/sse?%2Fmq=-1`)).join("");
    const ok = raw(s.port, sse(4));
    await waitFor(() => subscribers().sse === 1, "the first stream");
    await new Promise((r) => setTimeout(r, 100));
    expect(ok.closed()).toBe(false);
    ok.socket.destroy();
    const over = raw(s.port, sse(5));
    await waitFor(() => over.closed(), "the connection closed at the fifth");
  });

  it("the default Origin check takes a Host with its scheme's default port", async () => {
    const s = await start();
    const c = raw(
      s.port,
      request("GET", "/message-bus/dp/ws", "", {
        Host: "example.test:443",
        Origin: "https://example.test",
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
      }),
    );
    await waitFor(() => c.received().includes("\r\n\r\n"), "the answer");
    expect(c.received()).toMatch(/^HTTP\/1.1 101 /);
    c.socket.destroy();
  });

  it("limits that could never deliver a message are refused at once", () => {
    expect(() => new MessageBus({ limits: { maxBufferedBytes: 1024, maxMessageBytes: 4096 } })).toThrow(/maxBufferedBytes \(1024\) must be at least limits.maxMessageBytes \(4096\)/);
  });

  it("a long-poll timeout that is not a number of ms is refused at once; Infinity holds until something is due", () => {
    for (const bad of [NaN, -1]) expect(() => new MessageBus({ longPollTimeout: bad })).toThrow(/longPollTimeout must be a number of ms ≥ 0/);
    expect(new MessageBus({ longPollTimeout: Infinity }).options.longPollTimeout).toBe(Infinity);
  });

  it("a backend whose epoch would break SSE ids and __epoch is refused at start", async () => {
    const backend = new MemoryBackend();
    backend.epoch = "bad:epoch";
    const bus = new MessageBus({ backend, onError: () => {} });
    await expect(bus.ready()).rejects.toThrow(/epoch "bad:epoch" is not 1-64 characters/);
    await bus.close();
  });
});
