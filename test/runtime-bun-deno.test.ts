/**
 * The same bus on Bun and on Deno: `cometbus serve` run by each (from their npm packages), with
 * their own servers and WebSockets, passes the delivery checks the Node server passes: every
 * transport delivers 3 channels × 100 messages in order and once, lastId, targeting, limits and bad
 * input, a WebSocket cut mid-stream resuming; the client from dist/ runs on each as on Node.
 */
import { spawn } from "node:child_process";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { longPoll, parse, poll, sse, WsClient, wsUrl } from "./fixtures/clients.js";
import { follow, TRANSPORTS, type Followed } from "./fixtures/follow.js";
import { raw, request } from "./fixtures/raw-tcp.js";
import { FUZZ_SEED, fuzzRuns, MAX_CLOSE_REASON_BYTES, jsonBodyText, subscriptionText, utf8Bytes } from "./helpers/fuzz-arbitraries.js";
import { type ServerProcess, spawnServer } from "./helpers/processes.js";
import { type Ack, publishAll } from "./helpers/publisher.js";
import { waitFor } from "./helpers/wait.js";
import { requireRuntime, RUNTIMES, runtimeCommand, type Runtime } from "./helpers/runtimes.js";

const TOKEN = "runtime-token";
const PER_CHANNEL = 100;
/** What the transports may close a socket with over bad input (docs/protocol.md#65-websocket). */
const CLOSE_CODES = new Set([1007, 1008, 1009, 1013]);
const CLIENT_SCRIPT = fileURLToPath(new URL("./fixtures/runtime-client.mjs", import.meta.url));
/** A safety net for waits over loopback on a busy machine, never a timing assertion. */
const WAIT_MS = 20_000;

const NATIVE = { bun: "Bun.serve", deno: "Deno.serve" } as const;

const channelsFor = (tag: string) => [`/rt/${tag}/a`, `/rt/${tag}/b`, `/rt/${tag}/c`];

/** Publishes 3 × 100 over HTTP, one at a time: message i goes to channel i % 3. */
async function publish(url: string, channels: string[], count = channels.length * PER_CHANNEL): Promise<Ack[]> {
  const run = await publishAll(url, TOKEN, 0, channels, count, 1);
  expect(run.rejections).toEqual([]);
  return run.acks;
}

/** Per channel: ids 1..n in order, each once, the data acknowledged, in publishing order. */
function expectExact(messages: Pick<Message, "channel" | "message_id" | "data">[], acks: Ack[], channels: string[]): void {
  for (const ch of channels) {
    const want = acks.filter((a) => a.channel === ch);
    const got = messages.filter((m) => m.channel === ch);
    expect(got.map((m) => m.message_id)).toEqual(want.map((a) => a.message_id));
    expect(got.map((m) => m.data)).toEqual(want.map((a) => a.data));
  }
  expect(messages.length).toBe(acks.length);
}

async function postPublish(url: string, body: unknown, token = TOKEN): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/publish`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/**
 * Runs test/fixtures/runtime-client.mjs on `runtime`: the cometbus client following `channels` until
 * it has `want` messages. `subscribed` resolves when it says it follows them.
 */
function runClient(runtime: Runtime, base: string, transport: string, channels: string[], want: number) {
  const [cmd, ...args] = runtimeCommand(runtime);
  const child = spawn(cmd, [...args, CLIENT_SCRIPT, base, transport, String(want), ...channels], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let subscribed!: () => void;
  const following = new Promise<void>((r) => (subscribed = r));
  child.stdout.on("data", (d) => {
    out += d;
    if (out.includes("subscribed\n")) subscribed();
  });
  child.stderr.on("data", (d) => (out += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS);
  const done = new Promise<{ out: string; code: number | null }>((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      subscribed();
      resolve({ out, code });
    }),
  );
  return { following, done };
}

describe.each(RUNTIMES.map((r) => [r, requireRuntime(r)] as const))("cometbus serve on %s", (runtime, available) => {
  let server: ServerProcess;
  let base: string;
  const bus = () => base;

  beforeAll(async () => {
    if (!available) return;
    server = await spawnServer("memory", TOKEN, [], runtimeCommand(runtime));
    base = server.url;
  }, 60_000);
  afterAll(() => server?.stop());

  it.skipIf(!available)(`serves with ${NATIVE[runtime]} and its own WebSocket, not a Node compatibility layer`, async () => {
    const line = `cometbus serves with ${NATIVE[runtime]} and its own WebSocket`;
    await waitFor(() => server.output().includes(line), () => `"${line}" (got: ${server.output()})`, WAIT_MS);
  });

  describe.each(TRANSPORTS)("%s", (transport) => {
    it.skipIf(!available)("delivers 3 channels × 100 messages live, in order, each once", async () => {
      const channels = channelsFor(`live-${transport}`);
      let subscribed!: () => void;
      const ready = new Promise<void>((r) => (subscribed = r));
      const start = Object.fromEntries(channels.map((ch) => [ch, -1]));
      const allIn = (f: Followed) => channels.every((ch) => f.positions[ch] === PER_CHANNEL);
      const following = follow(transport, bus(), `live-${transport}`, start, allIn, { onSubscribed: subscribed });
      following.catch(() => subscribed());
      await ready;
      const acks = await publish(bus(), channels);
      const f = await following;
      expectExact(f.messages, acks, channels);
      expect(new Set(f.messages.map((m) => m.global_id)).size).toBe(acks.length);
    });

    it.skipIf(!available)("delivers a backlog of 3 × 100 from lastId 0, in order, each once", async () => {
      const channels = channelsFor(`backlog-${transport}`);
      const acks = await publish(bus(), channels);
      const start = Object.fromEntries(channels.map((ch) => [ch, 0]));
      const allIn = (f: Followed) => channels.every((ch) => f.positions[ch] === PER_CHANNEL);
      const f = await follow(transport, bus(), `backlog-${transport}`, start, allIn);
      expectExact(f.messages, acks, channels);
    });
  });

  it.skipIf(!available)("lastId: -1 answers where the channel stands, k what came after k, beyond the end nothing", async () => {
    const [ch] = channelsFor("last-id");
    await publish(bus(), [ch], 5);
    const status = parse((await poll(bus(), "lid", { [ch]: -1 })).text);
    expect(status).toEqual([{ global_id: -1, message_id: -1, channel: "/__status", data: { [ch]: 5 } }]);
    const after2 = parse((await poll(bus(), "lid", { [ch]: 2 })).text);
    expect(after2.map((m) => m.message_id)).toEqual([3, 4, 5]);
    const all = parse((await poll(bus(), "lid", { [ch]: 0 })).text);
    expect(all.map((m) => m.message_id)).toEqual([1, 2, 3, 4, 5]);
    expect(parse((await poll(bus(), "lid", { [ch]: 5 })).text)).toEqual([]);
  });

  it.skipIf(!available)("targeting: a message for one client id reaches that client only, over WebSocket and SSE", async () => {
    const ch = "/rt/targeted";
    const clients = ["tgt-a", "tgt-b"].map((id) => new WsClient(wsUrl(bus(), id)));
    try {
      await Promise.all(clients.map((c) => c.opened));
      for (const c of clients) c.send({ subscribe: { [ch]: -1 } });
      // The welcome, then the subscribe's answer.
      await Promise.all(clients.map((c) => c.until(() => c.frames.length >= 2, "subscribed")));
      const got: unknown[] = [];
      let streaming!: () => void;
      const open = new Promise<void>((r) => (streaming = r));
      const stream = sse(`${bus()}/tgt-b/sse?${encodeURIComponent(ch)}=-1`, (e) => {
        streaming();
        const m = JSON.parse(e.data) as Message;
        if (m.channel === ch) got.push(m.data);
        return got.length === 2;
      });
      await open;
      expect((await postPublish(bus(), { channel: ch, data: "for a", client_ids: ["tgt-a"] })).status).toBe(200);
      expect((await postPublish(bus(), { channel: ch, data: "for b", client_ids: ["tgt-b"] })).status).toBe(200);
      expect((await postPublish(bus(), { channel: ch, data: "for all" })).status).toBe(200);
      const data = (c: WsClient) => c.messages().filter((m) => m.channel === ch).map((m) => m.data);
      await Promise.all(clients.map((c) => c.until(() => data(c).includes("for all"), "the broadcast")));
      expect(data(clients[0])).toEqual(["for a", "for all"]);
      expect(data(clients[1])).toEqual(["for b", "for all"]);
      expect((await stream).ended).toBe("client");
      expect(got).toEqual(["for b", "for all"]);
    } finally {
      for (const c of clients) c.close();
    }
  });

  it.skipIf(!available)("limits: a frame too large is closed 1009, a binary frame 1007, each with the documented reason", async () => {
    const big = new WsClient(wsUrl(bus(), "lim-big"));
    await big.opened;
    big.send("x".repeat(64 * 1024 + 1));
    expect(await big.whenClosed()).toEqual({ code: 1009, reason: "frame too large: at most 65536 bytes" });
    const bin = new WsClient(wsUrl(bus(), "lim-bin"));
    await bin.opened;
    bin.ws.send(Buffer.from([1, 2, 3]));
    expect(await bin.whenClosed()).toEqual({ code: 1007, reason: "binary frames are not part of the protocol" });
  });

  it.skipIf(!available)("limits: a WebSocket that does not read is cut once its buffered bytes pass maxBufferedBytes", async () => {
    const sockets = async () => ((await (await fetch(`${bus()}/stats`)).json()) as { subscribers: { websocket: number } }).subscribers.websocket;
    // The sockets of the tests before are gone first.
    await waitFor(async () => (await sockets()) === 0, () => "no WebSocket left from before", WAIT_MS);
    const ch = "/rt/slow";
    const c = new WsClient(wsUrl(bus(), "slow"));
    try {
      await c.opened;
      c.send({ subscribe: { [ch]: -1 } });
      await c.until(() => c.frames.length >= 2, "subscribed");
      expect(await sockets()).toBe(1);
      // The client stops reading: what the server sends piles up in its buffers past the kernel's.
      (c.ws as unknown as { _socket: Socket })._socket.pause();
      const chunk = "x".repeat(100 * 1024);
      for (let i = 0; i < 200 && (await sockets()) > 0; i++) expect((await postPublish(bus(), { channel: ch, data: `${i}${chunk}` })).status).toBe(200);
      await waitFor(async () => (await sockets()) === 0, () => "the slow consumer cut", WAIT_MS);
    } finally {
      c.close();
    }
  });

  it.skipIf(!available)("bad input over HTTP: documented statuses with a JSON error", async () => {
    expect(await postPublish(bus(), { channel: "/x", data: 1 }, "wrong")).toEqual({ status: 401, body: { error: "missing or wrong bearer token" } });
    const noChannel = await postPublish(bus(), { data: 1 });
    expect(noChannel.status).toBe(400);
    expect(noChannel.body).toEqual({ error: expect.any(String) });
    // Raw: the server answers 413 and closes before the 2 MB are read, and fetch then fails its
    // upload (EPIPE) rather than read the answer that did come.
    const url = new URL(bus());
    const c = raw(Number(url.port), request("POST", `${url.pathname}/bad/poll?dlp=t`, "x".repeat(2 * 1024 * 1024), { "Content-Type": "application/json" }));
    try {
      await waitFor(() => /\r\n\r\n\{.*\}/s.test(c.received()) || c.closed(), "the 413");
      const [head, body] = c.received().split("\r\n\r\n");
      expect(head).toMatch(/^HTTP\/1\.1 413 /);
      expect(JSON.parse(body.slice(body.indexOf("{"), body.lastIndexOf("}") + 1))).toEqual({ error: expect.stringMatching(/too large/) });
    } finally {
      c.socket.destroy();
    }
    const plain = await fetch(`${bus()}/bad/ws`);
    expect(plain.status).toBe(426);
    expect(await plain.json()).toEqual({ error: expect.any(String) });
  });

  it.skipIf(!available)("fuzzed poll bodies get 200 with an array or 4xx with {error}; fuzzed subscribe frames an answer or a documented close", async () => {
    await fc.assert(
      fc.asyncProperty(jsonBodyText, async (text) => {
        const res = await fetch(`${bus()}/fz/poll?dlp=t`, { method: "POST", headers: { "Content-Type": "application/json" }, body: text });
        const body = (await res.json()) as unknown;
        if (res.status === 200) expect(Array.isArray(body)).toBe(true);
        else {
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(body).toEqual({ error: expect.any(String) });
        }
      }),
      { numRuns: fuzzRuns(60), seed: FUZZ_SEED },
    );
    await fc.assert(
      fc.asyncProperty(subscriptionText, async (text) => {
        const c = new WsClient(wsUrl(bus(), "fz-ws"));
        try {
          await c.opened;
          c.send(`{"subscribe":${text}}`);
          const outcome = await c.until(() => (c.closed ? "closed" : c.frames.length >= 2 ? "answered" : false), "an answer or a close");
          if (outcome === "closed") {
            expect(CLOSE_CODES.has(c.closed!.code), `close ${c.closed!.code} ${c.closed!.reason}`).toBe(true);
            expect(c.closed!.reason.length).toBeGreaterThan(0);
            expect(utf8Bytes(c.closed!.reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
          } else expect(Array.isArray(c.frames[1])).toBe(true);
        } finally {
          c.close();
        }
      }),
      { numRuns: fuzzRuns(40), seed: FUZZ_SEED },
    );
    // Still serving.
    expect((await poll(bus(), "fz-after", { "/rt/after": -1 })).status).toBe(200);
  }, 60_000);

  it.skipIf(!available)("a WebSocket killed mid-stream resumes from its positions: every message once, in order", async () => {
    const channels = channelsFor("resume");
    const start = Object.fromEntries(channels.map((ch) => [ch, -1]));
    const first = new WsClient(wsUrl(bus(), "resume"));
    await first.opened;
    first.send({ subscribe: start });
    await first.until(() => first.frames.length >= 2, "subscribed");
    const publishing = publish(bus(), channels);
    await first.until(() => first.messages().filter((m) => m.channel !== "/__status").length >= 40, "40 messages");
    // Cut without a close frame, mid-stream, as a network drop does.
    first.ws.terminate();
    const before = first.messages().filter((m) => m.channel !== "/__status");
    const positions = { ...start };
    for (const m of first.messages()) {
      if (m.channel === "/__status") for (const ch of channels) if (typeof (m.data as Record<string, number>)[ch] === "number") positions[ch] = (m.data as Record<string, number>)[ch];
      if (m.channel in positions) positions[m.channel] = m.message_id;
    }
    const acks = await publishing;
    const again = new WsClient(wsUrl(bus(), "resume"));
    try {
      await again.opened;
      again.send({ subscribe: positions });
      const after = () => again.messages().filter((m) => m.channel !== "/__status");
      await again.until(() => before.length + after().length >= acks.length && after(), "the rest");
      expectExact([...before, ...after()], acks, channels);
    } finally {
      again.close();
    }
  });

  describe.each(["websocket", "sse", "long-poll"])("the cometbus client (dist/client) run by %s", (transport) => {
    it.skipIf(!available)(`receives 3 channels in order, each once, through ${runtime}'s own WebSocket and fetch`, async () => {
      const channels = channelsFor(`client-${transport}`);
      const count = 30;
      const running = runClient(runtime, base.replace(/\/message-bus$/, "/"), transport, channels, count * channels.length);
      await running.following;
      const acks = await publish(bus(), channels, count * channels.length);
      const { out, code } = await running.done;
      expect(code, out).toBe(0);
      const got = out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { channel: string; message_id: number; data: unknown; transport: string });
      expectExact(got, acks, channels);
      expect(new Set(got.map((g) => g.transport))).toEqual(new Set([transport]));
    });
  });

  it.skipIf(!available)("shedding (--max-connections 0): a WebSocket is taken and closed 1013 with the reason, a stream refused 503", async () => {
    const shedding = await spawnServer("memory", TOKEN, ["--max-connections", "0"], runtimeCommand(runtime));
    try {
      const c = new WsClient(wsUrl(shedding.url, "shed"));
      await c.opened;
      const closed = await c.whenClosed();
      expect(closed.code).toBe(1013);
      expect(closed.reason).toMatch(/^overloaded: 0 connections \(at most 0\): retry after \d+ ms$/);
      const res = await fetch(`${shedding.url}/shed/sse?%2Fx=-1`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ error: expect.stringMatching(/^overloaded/) });
      // A plain poll holds no connection: still answered.
      expect((await poll(shedding.url, "shed", { "/x": -1 })).status).toBe(200);
    } finally {
      await shedding.stop();
    }
  });

  it.skipIf(!available)("--demo serves the demo page and the bus beside it", async () => {
    const demo = await spawnServer("memory", TOKEN, ["--demo"], runtimeCommand(runtime));
    try {
      const page = await fetch(demo.url);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toMatch(/^text\/html/);
      const stats = await fetch(new URL("message-bus/stats", demo.url));
      expect(stats.status).toBe(200);
      expect(await longPoll(new URL("message-bus", demo.url).href, "demo-lp", { "/demo/x": -1 }).then((a) => a.status)).toBe(200);
    } finally {
      await demo.stop();
    }
  });
});
