import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startPageServer, type PageServer } from "./fixtures/page-server.js";
import { launchChromium } from "./helpers/browser.js";
import { hasChromium, requireService } from "./helpers/services.js";
import { MESSAGE_BUS_CLIENT_MODES, subscribeMessageBusClient } from "./fixtures/message-bus-client-page.js";

const haveChromium = requireService("chromium", hasChromium(), "apt-get install chromium");

/** Values that must survive JSON, chunk framing and the browser's decoding unchanged. */
const DATA = [
  "héllo wörld — 你好 — 😀 𝄞 𠜎 \u2028\u2029 end",
  "before\r\n|\r\nafter \r\n||\r\n lone \r\n|",
  { nested: { a: [1, 2.5, -3e-7, { b: null, c: [true, false, { d: 'e"\\/' }] }], empty: {} } },
  "x".repeat(200 * 1024),
  42,
];
const dataFor = (ch: string, i: number) => ({ ch, i, v: DATA[i % DATA.length] });
const PER_CHANNEL = 20;

interface Got {
  ch: string;
  id: number;
  data: unknown;
}

async function publishRound(server: PageServer, channels: string[], from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    for (const ch of channels) await server.bus.publish(ch, dataFor(ch, i));
    await new Promise((r) => setTimeout(r, 2));
  }
}

function expectExact(got: Got[], channels: string[], n: number): void {
  for (const ch of channels) {
    const mine = got.filter((g) => g.ch === ch);
    expect(mine.map((g) => g.id)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(mine.map((g) => g.data)).toEqual(Array.from({ length: n }, (_, i) => dataFor(ch, i)));
  }
  expect(got.length).toBe(channels.length * n);
}

describe.skipIf(!haveChromium)("in Chromium", () => {
  let browser: Browser;
  let server: PageServer;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    [browser, server] = await Promise.all([launchChromium(), startPageServer({ longPollTimeout: 3000 })]);
  });
  afterEach(async () => {
    await context?.close();
    context = undefined;
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function openPage(): Promise<Page> {
    context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url + "/");
    return page;
  }

  describe.each(MESSAGE_BUS_CLIENT_MODES)("message-bus-client (npm, with jQuery) over $name", ({ name, setup }) => {
    it("receives 3 channels (one named with a space and non-ASCII letters) in order, each once, with exact data", async () => {
      const page = await openPage();
      const tag = name.replace(/\W+/g, "-");
      // message_bus accepts any channel name: its users have ones with spaces and non-ASCII letters.
      const channels = [`/mb/${tag}/a`, `/mb/${tag}/b`, `/mb/${tag}/café 日本 c`];
      const polls: { url: string; dontChunk: boolean }[] = [];
      const contentTypes: string[] = [];
      page.on("request", (r) => {
        if (r.url().includes("/poll")) polls.push({ url: r.url(), dontChunk: "dont-chunk" in r.headers() });
      });
      page.on("response", (r) => {
        if (r.url().includes("/poll")) contentTypes.push(r.headers()["content-type"]);
      });
      await subscribeMessageBusClient(page, setup, channels);
      await publishRound(server, channels, 0, PER_CHANNEL);
      await page.waitForFunction((n) => (window as unknown as { got: unknown[] }).got.length >= n, channels.length * PER_CHANNEL, {
        timeout: 20_000,
      });
      // Nothing more is due: a late duplicate would show after one more round trip.
      await page.waitForTimeout(300);
      const got = (await page.evaluate(() => (window as unknown as { got: Got[] }).got)) as Got[];
      await page.evaluate(() => (window as unknown as { MessageBus: { stop(): void } }).MessageBus.stop());
      expectExact(got, channels, PER_CHANNEL);

      // The client really used the transport under test.
      expect(polls.length).toBeGreaterThan(0);
      if (name === "polling") expect(polls.every((p) => p.url.endsWith("/poll?dlp=t"))).toBe(true);
      else expect(polls.every((p) => !p.url.includes("dlp=t"))).toBe(true);
      const wantDontChunk = name === "plain long-poll" || name === "polling";
      expect(polls.every((p) => p.dontChunk === wantDontChunk)).toBe(true);
      const wantType = name === "chunked long-poll" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8";
      expect(new Set(contentTypes)).toEqual(new Set([wantType]));
    });
  });

  it("a native EventSource survives a server-side stream close without loss or duplicates", async () => {
    const page = await openPage();
    const ch = "/es/chan";
    const url = `${server.base}/es-client/sse?${ch}=-1`;
    await page.evaluate((url) => {
      const w = window as unknown as { events: { id: string; data: unknown }[]; opens: number; es: EventSource };
      w.events = [];
      w.opens = 0;
      w.es = new EventSource(url);
      w.es.onopen = () => w.opens++;
      w.es.onmessage = (e) => w.events.push({ id: e.lastEventId, data: JSON.parse(e.data) });
    }, url);
    type W = { events: { id: string; data: { channel: string; message_id: number; data: unknown } }[]; opens: number };
    await page.waitForFunction(() => (window as unknown as W).events.length >= 1, null, { timeout: 10_000 });
    await publishRound(server, [ch], 0, 10);
    await page.waitForFunction(() => (window as unknown as W).events.length >= 11, null, { timeout: 10_000 });

    // End the stream from the server, then publish while the browser is away (it retries after 1 s):
    // only Last-Event-ID can bring these back, since the URL still says -1.
    const sse = [...server.bus.hub.subscribers].filter((s) => s.kind === "sse");
    expect(sse.length).toBe(1);
    for (const s of sse) s.close();
    await publishRound(server, [ch], 10, PER_CHANNEL);
    await page.waitForFunction(
      (n) => (window as unknown as W).events.filter((e) => e.data.channel !== "/__status").length >= n,
      PER_CHANNEL,
      { timeout: 15_000 },
    );
    await page.waitForTimeout(200);
    const { events, opens } = (await page.evaluate(() => {
      const w = window as unknown as W & { es: EventSource };
      w.es.close();
      return { events: w.events, opens: w.opens };
    })) as W;
    expect(opens).toBe(2);
    const messages = events.filter((e) => e.data.channel === ch);
    const epoch = server.bus.backend.epoch;
    expect(messages.map((e) => e.data.message_id)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i + 1));
    expect(messages.map((e) => e.data.data)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => dataFor(ch, i)));
    expect(messages.map((e) => e.id)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => `${epoch}:${i + 1}`));
    // Each stream starts with where it stands: 0 at first, 10 after the resume.
    const statuses = events.filter((e) => e.data.channel === "/__status").map((e) => e.data.data);
    expect(statuses).toEqual([
      { __epoch: epoch, __spread: expect.any(Number), [ch]: 0 },
      { __epoch: epoch, __spread: expect.any(Number), [ch]: 10 },
    ]);
  });

  it("a native WebSocket subscribes and receives", async () => {
    const page = await openPage();
    const channels = ["/ws/a", "/ws/b"];
    const url = `${server.base.replace(/^http/, "ws")}/ws-client/ws`;
    type W = { frames: unknown[][]; wsClosed?: number };
    await page.evaluate(
      ({ url, channels }) =>
        new Promise<void>((resolve, reject) => {
          const w = window as unknown as W & { ws: WebSocket };
          w.frames = [];
          w.ws = new WebSocket(url);
          w.ws.onmessage = (e) => w.frames.push(JSON.parse(e.data));
          w.ws.onclose = (e) => (w.wsClosed = e.code);
          w.ws.onerror = () => reject(new Error("websocket error"));
          w.ws.onopen = () => {
            w.ws.send(JSON.stringify({ subscribe: Object.fromEntries(channels.map((c) => [c, 0])) }));
            resolve();
          };
        }),
      { url, channels },
    );
    await page.waitForFunction(() => (window as unknown as W).frames.length >= 2, null, { timeout: 10_000 });
    await publishRound(server, channels, 0, PER_CHANNEL);
    await page.waitForFunction(
      (n) => (window as unknown as W).frames.flat().filter((m) => (m as { channel: string }).channel !== "/__status").length >= n,
      channels.length * PER_CHANNEL,
      { timeout: 10_000 },
    );
    const { frames, closed } = (await page.evaluate(() => {
      const w = window as unknown as W & { ws: WebSocket };
      w.ws.close();
      return { frames: w.frames, closed: w.wsClosed };
    })) as { frames: unknown[][]; closed?: number };
    expect(closed).toBeUndefined();
    expect(frames[0]).toEqual([{ global_id: -1, message_id: -1, channel: "/__status", data: { __epoch: server.bus.backend.epoch, __spread: expect.any(Number) } }]);
    expect(frames[1]).toEqual([]);
    const got = frames
      .slice(2)
      .flat()
      .map((m) => {
        const x = m as { channel: string; message_id: number; data: unknown };
        return { ch: x.channel, id: x.message_id, data: x.data };
      });
    expectExact(got, channels, PER_CHANNEL);
  });
});
