import fc from "fast-check";
import { Hono } from "hono";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Message } from "../src/envelope.js";
import { MessageBus } from "../server/index.js";
import type { Listening } from "../server/node/listen.js";
import { deflateStats } from "../server/node/ws-deflate.js";
import { wsUrl } from "./fixtures/clients.js";
import { launchChromium } from "./helpers/browser.js";
import { hasChromium, requireService } from "./helpers/services.js";

/**
 * permessage-deflate (server/node/ws-deflate.ts): clients that negotiated it get the same messages,
 * compressed, each live message compressed once per window size, not once per socket.
 */

const enabled = requireService("Chromium", hasChromium(), "apt-get install chromium");
const MESSAGES = 30;
const CHANNEL = "/deflate";

/** Message data of about 1-2 KB of JSON (generated), over the default 256-byte threshold. */
const payloads: unknown[] = fc
  .sample(fc.record({ value: fc.jsonValue({ maxDepth: 3 }), note: fc.string({ minLength: 1000, maxLength: 1500 }) }), { numRuns: MESSAGES, seed: 18 })
  .map((p, i) => ({ i, ...p }));

let browser: Browser | undefined;
let bus: MessageBus | undefined;
let server: Listening | undefined;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  if (enabled) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.terminate();
  await server?.close();
  server = bus = undefined;
});

async function serve(options: ConstructorParameters<typeof MessageBus>[0]): Promise<string> {
  // flushDelay 0: a flush that compresses is costly enough to be held, and the counts below are per message.
  bus = new MessageBus({ onError: () => {}, allowedOrigins: ["*"], flushDelay: 0, ...options });
  await bus.ready();
  const app = new Hono();
  app.route(bus.options.base, bus.routes());
  app.get("/", (c) => c.html("<!doctype html><title>deflate</title>"));
  server = await bus.listen(0, "127.0.0.1", app);
  return server.url + bus.options.base;
}

/** A Node client (ws) that subscribes at -1 and collects the live messages. */
async function nodeClient(base: string, id: string, deflate: WebSocket.ClientOptions["perMessageDeflate"]) {
  const ws = new WebSocket(wsUrl(base, id), { perMessageDeflate: deflate });
  sockets.push(ws);
  const messages: Message[] = [];
  let frames = 0;
  let answered!: () => void;
  const subscribed = new Promise<void>((r) => (answered = r));
  ws.on("message", (data) => {
    frames++;
    const list = JSON.parse(data.toString()) as Message[];
    // The welcome is frame 1; frame 2 answers the subscription.
    if (frames === 2) answered();
    messages.push(...list.filter((m) => m.channel === CHANNEL));
  });
  await new Promise<void>((resolve, reject) => ws.once("open", resolve).once("error", reject));
  ws.send(JSON.stringify({ subscribe: { [CHANNEL]: -1 } }));
  await subscribed;
  return { ws, messages, bytesRead: () => (ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead };
}

async function publishAll(): Promise<void> {
  for (const data of payloads) {
    await bus!.publish(CHANNEL, data);
    // A turn between publishes: an idle bus flushes each alone, so every frame holds one message.
    await new Promise((r) => setImmediate(r));
  }
}

async function allArrived(messages: Message[]): Promise<void> {
  for (let i = 0; messages.length < MESSAGES && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
}

function expectExact(messages: Message[]): void {
  expect(messages.map((m) => m.message_id)).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
  expect(messages.map((m) => m.data)).toEqual(payloads);
}

describe("permessage-deflate", () => {
  it("compresses each live message once for every socket with the same window; all arrive exact, in order", async () => {
    const base = await serve({ perMessageDeflate: true });
    const plain = await nodeClient(base, "plain", false);
    const deflating = [await nodeClient(base, "d1", true), await nodeClient(base, "d2", true), await nodeClient(base, "d3", true)];
    // A client that allows the server a smaller window gets its own compression (once for all such).
    const small = await nodeClient(base, "small", { serverMaxWindowBits: 10 });
    for (const c of [...deflating, small]) expect(c.ws.extensions).toContain("permessage-deflate");
    expect(plain.ws.extensions).toBe("");
    const before = deflateStats.calls;
    await publishAll();
    for (const c of [plain, ...deflating, small]) {
      await allArrived(c.messages);
      expectExact(c.messages);
    }
    // Once per message per window size (15 and 10): not once per socket (that would be 4 × 30).
    expect(deflateStats.calls - before).toBe(2 * MESSAGES);
    // And compressed on the wire: JSON text deflates well.
    for (const c of deflating) expect(c.bytesRead()).toBeLessThan(plain.bytesRead() * 0.9);
  });

  it("compresses a catch-up page per socket, in order with the live messages after it", async () => {
    const base = await serve({ perMessageDeflate: true });
    const half = MESSAGES / 2;
    for (const data of payloads.slice(0, half)) await bus!.publish(CHANNEL, data);
    const before = deflateStats.calls;
    const ws = new WebSocket(wsUrl(base, "catch-up"), { perMessageDeflate: true });
    sockets.push(ws);
    const messages: Message[] = [];
    ws.on("message", (data) => messages.push(...(JSON.parse(data.toString()) as Message[]).filter((m) => m.channel === CHANNEL)));
    await new Promise<void>((resolve, reject) => ws.once("open", resolve).once("error", reject));
    ws.send(JSON.stringify({ subscribe: { [CHANNEL]: 0 } }));
    for (let i = 0; messages.length < half && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    // The backlog came as one page, compressed for this socket.
    expect(deflateStats.calls - before).toBe(1);
    for (const data of payloads.slice(half)) await bus!.publish(CHANNEL, data);
    await allArrived(messages);
    expectExact(messages);
  });

  it("refuses a threshold that is not a number of bytes ≥ 0", async () => {
    fc.assert(
      fc.property(fc.oneof(fc.double({ max: -Number.MIN_VALUE }), fc.constant(Number.NaN), fc.integer({ max: -1 })), (threshold) => {
        expect(() => new MessageBus({ perMessageDeflate: { threshold } })).toThrow(RangeError);
      }),
    );
    await new MessageBus({ perMessageDeflate: { threshold: 0 } }).close();
  });

  it("off by default: nothing is negotiated or compressed", async () => {
    const base = await serve({});
    const c = await nodeClient(base, "default", true);
    expect(c.ws.extensions).toBe("");
    const before = deflateStats.calls;
    await publishAll();
    await allArrived(c.messages);
    expectExact(c.messages);
    expect(deflateStats.calls).toBe(before);
  });

  it("without the fast paths ws compresses per socket, and every message still arrives exact", async () => {
    const base = await serve({ perMessageDeflate: true, fastPaths: false });
    const c = await nodeClient(base, "fallback", true);
    expect(c.ws.extensions).toContain("permessage-deflate");
    await publishAll();
    await allArrived(c.messages);
    expectExact(c.messages);
  });

  it.runIf(enabled)("Chromium negotiates it and decodes every compressed message", async () => {
    const base = await serve({ perMessageDeflate: true });
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      await page.goto(server!.url + "/");
      const url = wsUrl(base, "chromium");
      await page.evaluate(
        ({ url, channel }) =>
          new Promise<void>((resolve, reject) => {
            const ws = new globalThis.WebSocket(url);
            const w = window as unknown as { got: unknown[]; extensions: string };
            w.got = [];
            let frames = 0;
            ws.onmessage = (e) => {
              frames++;
              const list = JSON.parse(e.data as string) as { channel: string }[];
              w.got.push(...list.filter((m) => m.channel === channel));
              if (frames === 2) resolve();
            };
            ws.onopen = () => {
              w.extensions = ws.extensions;
              ws.send(JSON.stringify({ subscribe: { [channel]: -1 } }));
            };
            ws.onerror = () => reject(new Error("WebSocket error"));
          }),
        { url, channel: CHANNEL },
      );
      const before = deflateStats.calls;
      await publishAll();
      await page.waitForFunction((n) => (window as unknown as { got: unknown[] }).got.length >= n, MESSAGES);
      const { got, extensions } = await page.evaluate(() => {
        const w = window as unknown as { got: Message[]; extensions: string };
        return { got: w.got, extensions: w.extensions };
      });
      expect(extensions).toContain("permessage-deflate");
      expectExact(got);
      expect(deflateStats.calls - before).toBe(MESSAGES);
    } finally {
      await context.close();
    }
  });
});
