/**
 * Real browsers against the Bun and the Deno server: the npm message-bus-client (with jQuery) over
 * polling, plain and chunked long-polls, and cometbus's own browser bundle over the runtime's native
 * WebSocket, each receiving 3 channels in order, each once, with exact data.
 */
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "./helpers/browser.js";
import { type ServerProcess, spawnListening } from "./helpers/processes.js";
import { publishAll } from "./helpers/publisher.js";
import { requireRuntime, RUNTIMES, runtimeCommand } from "./helpers/runtimes.js";
import { hasChromium, requireService } from "./helpers/services.js";
import { MESSAGE_BUS_CLIENT_MODES, subscribeMessageBusClient } from "./fixtures/message-bus-client-page.js";

const PAGE_SERVER = fileURLToPath(new URL("./fixtures/runtime-page-server.mjs", import.meta.url));
const TOKEN = "page-token";
const PER_CHANNEL = 20;
const haveChromium = requireService("chromium", hasChromium(), "apt-get install chromium");

interface Got {
  ch: string;
  id: number;
  data: unknown;
}

describe.each(RUNTIMES.map((r) => [r, haveChromium && requireRuntime(r)] as const))("in Chromium against the %s server", (runtime, available) => {
  let browser: Browser;
  let server: ServerProcess;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    if (!available) return;
    [browser, server] = await Promise.all([launchChromium(), spawnListening(runtimeCommand(runtime), [PAGE_SERVER])]);
  }, 60_000);
  afterEach(async () => {
    await context?.close();
    context = undefined;
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function openPage(path: string): Promise<Page> {
    context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url + path);
    return page;
  }

  /** Publishes PER_CHANNEL to each channel round-robin; checks what the page got against the acks. */
  async function publishAndCheck(page: Page, channels: string[]): Promise<void> {
    const { acks, rejections } = await publishAll(`${server.url}/message-bus`, TOKEN, 0, channels, channels.length * PER_CHANNEL, 1);
    expect(rejections).toEqual([]);
    await page.waitForFunction((n) => (window as unknown as { got: unknown[] }).got.length >= n, acks.length, { timeout: 20_000 });
    // Nothing more is due: a late duplicate would show after one more round trip.
    await page.waitForTimeout(300);
    const got = (await page.evaluate(() => (window as unknown as { got: Got[] }).got)) as Got[];
    for (const ch of channels) {
      const want = acks.filter((a) => a.channel === ch);
      const mine = got.filter((g) => g.ch === ch);
      expect(mine.map((g) => g.id)).toEqual(want.map((a) => a.message_id));
      expect(mine.map((g) => g.data)).toEqual(want.map((a) => a.data));
    }
    expect(got.length).toBe(acks.length);
  }

  it.skipIf(!available)(`the page server runs on ${runtime}'s own server`, () => {
    expect(server.output()).toContain(`page server (${runtime}) listening on`);
  });

  describe.each(MESSAGE_BUS_CLIENT_MODES)("message-bus-client (npm, with jQuery) over $name", ({ name, setup }) => {
    it.skipIf(!available)("receives 3 channels in order, each once, with exact data", async () => {
      const page = await openPage("/mb");
      const tag = name.replace(/\W+/g, "-");
      const channels = [`/mb/${tag}/a`, `/mb/${tag}/b`, `/mb/${tag}/café 日本 c`];
      const polls: string[] = [];
      page.on("request", (r) => {
        if (r.url().includes("/poll")) polls.push(r.url());
      });
      await subscribeMessageBusClient(page, setup, channels);
      await publishAndCheck(page, channels);
      await page.evaluate(() => (window as unknown as { MessageBus: { stop(): void } }).MessageBus.stop());
      expect(polls.length).toBeGreaterThan(0);
      if (name === "polling") expect(polls.every((u) => u.endsWith("/poll?dlp=t"))).toBe(true);
      else expect(polls.every((u) => !u.includes("dlp=t"))).toBe(true);
    });
  });

  it.skipIf(!available)(`cometbus's browser bundle over ${runtime}'s native WebSocket receives 3 channels in order, each once`, async () => {
    const page = await openPage("/cometbus");
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    const channels = ["/cb/ws/a", "/cb/ws/b", "/cb/ws/c"];
    await page.evaluate((channels) => {
      const w = window as unknown as { MessageBus: any; got: unknown[]; bus: any };
      w.got = [];
      w.bus = new w.MessageBus({ baseUrl: "/", transports: ["websocket"], callbackInterval: 50 });
      for (const ch of channels) w.bus.subscribe(ch, (data: unknown, _g: number, id: number) => w.got.push({ ch, id, data }), 0);
    }, channels);
    await publishAndCheck(page, channels);
    expect(await page.evaluate(() => (window as unknown as { bus: { transport: string } }).bus.transport)).toBe("websocket");
    await page.evaluate(() => (window as unknown as { bus: { stop(): void } }).bus.stop());
    expect(sockets.length).toBeGreaterThan(0);
  });
});
