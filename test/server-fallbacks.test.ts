import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { decodeChunks } from "../src/wire.js";
import { MessageBus } from "../server/index.js";
import { NO_FAST_PATHS, probeFastPaths } from "../server/node/fast-paths.js";
import { follow, TRANSPORTS } from "./fixtures/follow.js";
import { startServer, type TestServer } from "./helpers/server.js";

/**
 * The plain ways the fast paths fall back to, proven to deliver: the private fields of Node and `ws`
 * (server/node/fast-paths.ts) left alone, and the routes served with no Node objects at all (as on
 * any web-standard runtime: `app.request`, Bun, Deno), where answers are Responses and streams are
 * ReadableStreams.
 */
const CHANNELS = ["/fb/a", "/fb/b", "/fb/c"];
const PER_CHANNEL = 100;

async function publishAll(bus: MessageBus): Promise<void> {
  for (let i = 1; i <= PER_CHANNEL; i++) for (const ch of CHANNELS) await bus.publish(ch, { ch, i });
}

function expectAll(messages: Message[]): void {
  for (const ch of CHANNELS) {
    expect(messages.filter((m) => m.channel === ch).map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i + 1));
  }
}

it("this Node and this ws offer every fast path (else the plain ways run everywhere)", () => {
  expect(probeFastPaths()).toEqual({ directChunks: true, flatHead: true, sharedFrames: true, directPolls: true });
  expect(NO_FAST_PATHS).toEqual({ directChunks: false, flatHead: false, sharedFrames: false, directPolls: false });
});

describe("fastPaths: false", () => {
  let server: TestServer;
  afterEach(async () => {
    await server?.close();
  });

  it.each(TRANSPORTS)("%s delivers 3 channels × 100 messages, backlog then live, in order, each once", async (transport) => {
    server = await startServer({ fastPaths: false });
    const start = Object.fromEntries(CHANNELS.map((ch) => [ch, 0]));
    // Half before (the catch-up), half after it subscribed (live): both paths, without the fast ones.
    for (let i = 1; i <= PER_CHANNEL / 2; i++) for (const ch of CHANNELS) await server.bus.publish(ch, { ch, i });
    let live!: Promise<void>;
    const f = await follow(transport, server.base, `fb-${transport}`, start, (x) => x.messages.length >= CHANNELS.length * PER_CHANNEL, {
      onSubscribed: () => {
        live = (async () => {
          for (let i = PER_CHANNEL / 2 + 1; i <= PER_CHANNEL; i++) for (const ch of CHANNELS) await server.bus.publish(ch, { ch, i });
        })();
      },
    });
    await live;
    expectAll(f.messages);
  });
});

describe("served with no Node objects (app.request)", () => {
  const bus = new MessageBus({ longPollTimeout: 2000, heartbeatInterval: 0 });
  const app = bus.routes();
  const form = { "Content-Type": "application/x-www-form-urlencoded" };
  afterAll(() => bus.close());

  it("poll answers the backlog at once, in pages", async () => {
    await publishAll(bus);
    const got: Message[] = [];
    let positions = Object.fromEntries(CHANNELS.map((ch) => [ch, 0]));
    for (let polls = 0; got.length < CHANNELS.length * PER_CHANNEL && polls < 50; polls++) {
      const body = Object.entries(positions).map(([ch, p]) => `${encodeURIComponent(ch)}=${p}`).join("&");
      const res = await app.request("/fb/poll?dlp=t", { method: "POST", headers: form, body });
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      for (const m of (await res.json()) as Message[]) {
        if (m.channel === "/__status") positions = { ...positions, ...(m.data as Record<string, number>) };
        else {
          got.push(m);
          positions[m.channel] = m.message_id;
        }
      }
    }
    expectAll(got);
  });

  it("a held long-poll is answered by a Response once a message comes", async () => {
    const last = await bus.lastId("/fb/a");
    const held = app.request("/lp/poll", { method: "POST", headers: { ...form, "Dont-Chunk": "true" }, body: `%2Ffb%2Fa=${last}` });
    await new Promise((r) => setTimeout(r, 50));
    await bus.publish("/fb/a", "held");
    const res = await held;
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(((await res.json()) as Message[]).map((m) => m.data)).toEqual(["held"]);
  });

  it("a chunked long-poll and an SSE stream are ReadableStreams: the catch-up, then live messages", async () => {
    const last = await bus.lastId("/fb/b");
    for (const kind of ["chunked", "sse"] as const) {
      const res =
        kind === "chunked"
          ? await app.request("/st/poll", { method: "POST", headers: form, body: `%2Ffb%2Fb=${last - 2}` })
          : await app.request(`/st/sse?%2Ffb%2Fb=${last - 2}`);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      const ids = () => {
        const batches =
          kind === "chunked"
            ? decodeChunks(text).chunks.map((c) => JSON.parse(c) as Message[])
            : [...text.matchAll(/^data: (.*)$/gm)].map((m) => [JSON.parse(m[1]) as Message]);
        return batches.flat().filter((m) => m.channel === "/fb/b").map((m) => m.message_id);
      };
      const until = async (n: number) => {
        while (ids().length < n) text += decoder.decode((await reader.read()).value, { stream: true });
      };
      await until(2);
      await bus.publish("/fb/b", { live: kind });
      await until(3);
      expect({ kind, ids: ids() }).toEqual({ kind, ids: [last - 1, last, last + 1] });
      await reader.cancel();
    }
  });

  it("a WebSocket upgrade is not this runtime's: 426", async () => {
    const res = await app.request("/w/ws", { headers: { Upgrade: "websocket" } });
    expect(res.status).toBe(426);
  });
});
