/**
 * The browser bundle (dist/client/cometbus.iife.js, served by the bus at /message-bus/client.js) in
 * Debian's headless Chromium against a real server that also serves the page: every transport alone,
 * the default negotiation through a WebSocket killed mid-stream, a hidden tab, and a plain page.
 */
import { Hono } from "hono";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MessageBus as ServerBus } from "../server/index.js";
import type { Listening } from "../server/node/listen.js";
import { launchChromium } from "./helpers/browser.js";
import { hasChromium, requireService } from "./helpers/services.js";
import { waitFor } from "./helpers/wait.js";
import { PAGE_HELPERS } from "./fixtures/page-scripts.js";

const enabled = requireService("chromium", hasChromium(), "apt-get install chromium");

const CHANNELS = ["/b/0", "/b/1", "/b/2", "/b/3", "/b/4"];
const PER_CHANNEL = 200;

/** A page that loads the bundle like any site would, and follows channels for the test. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>cometbus client test</title>
<script src="/message-bus/client.js"></script></head>
<body><script>
  window.got = {};
  window.seen = [];
  window.follow = function (options, channels) {
    var bus = options ? new MessageBus(options) : MessageBus;
    window.bus = bus;
    bus.onTransport(function (name) { seen.push(name); });
    channels.forEach(function (ch) {
      got[ch] = [];
      bus.subscribe(ch, function (data, globalId, messageId) { got[ch].push([messageId, data]); }, -1);
    });
  };
  ${PAGE_HELPERS}
</script></body></html>`;

interface Served extends Listening {
  bus: ServerBus;
  /** While set, WebSocket upgrades are refused (503), as by a proxy that stopped passing them. */
  refuseUpgrades: boolean;
}

async function serve(): Promise<Served> {
  const bus = new ServerBus({ onError: () => {}, longPollTimeout: 2000 });
  await bus.ready();
  const app = new Hono();
  const flags = { refuseUpgrades: false };
  app.use(`${bus.options.base}/:clientId/ws`, async (c, next) => (flags.refuseUpgrades ? c.json({ error: "refused by the test" }, 503) : next()));
  app.route(bus.options.base, bus.routes());
  app.get("/", (c) => c.html(PAGE));
  const l = await bus.listen(0, "127.0.0.1", app);
  return Object.assign(flags, { ...l, bus });
}

let browser: Browser | undefined;
let context: BrowserContext | undefined;
let server: Served | undefined;

beforeAll(async () => {
  if (enabled) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await context?.close();
  context = undefined;
  await server?.close();
  server = undefined;
});

async function open(): Promise<{ page: Page; s: Served }> {
  server = await serve();
  context = await browser!.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(server.url + "/");
  expect(await page.evaluate(() => typeof (window as unknown as { MessageBus: unknown }).MessageBus)).toBe("function");
  expect(errors).toEqual([]);
  return { page, s: server };
}

/** Waits until the page's bus uses `transport` and knows every channel's position (each -1 answered). */
async function subscribed(page: Page, transport: string): Promise<void> {
  await page.waitForFunction(
    ([t, chs]) => {
      const w = window as unknown as { bus: { transport: string; subscription(): Record<string, number> } };
      const sub = w.bus.subscription();
      return w.bus.transport === t && (chs as string[]).every((ch) => sub[ch] >= 0);
    },
    [transport, CHANNELS] as const,
    { timeout: 15_000, polling: 20 },
  );
}

/** Publishes PER_CHANNEL messages on each channel, interleaved; `midway` runs once, halfway. */
async function publishAll(s: Served, midway?: () => Promise<void> | void): Promise<void> {
  for (let i = 0; i < PER_CHANNEL; i++) {
    for (const ch of CHANNELS) await s.bus.publish(ch, { ch, i });
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
    if (i === PER_CHANNEL / 2 && midway) await midway();
  }
}

/** Every channel got messages 1..PER_CHANNEL, in order, each once, with their data. */
async function expectAll(page: Page): Promise<void> {
  await page.waitForFunction(
    ([chs, n]) => (chs as string[]).every((ch) => (window as unknown as { got: Record<string, unknown[]> }).got[ch].length >= (n as number)),
    [CHANNELS, PER_CHANNEL] as const,
    { timeout: 30_000, polling: 20 },
  );
  // A duplicate would trail the last batch; give it a moment to show.
  await page.waitForTimeout(100);
  const got = await page.evaluate(() => (window as unknown as { got: Record<string, [number, unknown][]> }).got);
  for (const ch of CHANNELS) {
    expect(got[ch].map((m) => m[0])).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i + 1));
    expect(got[ch].map((m) => m[1])).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => ({ ch, i })));
  }
}

const seen = (page: Page) => page.evaluate(() => (window as unknown as { seen: string[] }).seen);

describe.runIf(enabled)("cometbus client in Chromium", () => {
  describe.each(["websocket", "sse", "long-poll", "poll"])("%s forced alone", (transport) => {
    it(`delivers ${CHANNELS.length} channels × ${PER_CHANNEL} messages in order, each once`, async () => {
      const { page, s } = await open();
      await page.evaluate(
        ([t, chs]) => (window as unknown as { follow: (o: object, c: string[]) => void }).follow({ transports: [t], callbackInterval: 100 }, chs),
        [transport, CHANNELS] as const,
      );
      await subscribed(page, transport);
      await publishAll(s);
      await expectAll(page);
      expect(await seen(page)).toEqual([transport]);
    });
  });

  /** Drops every WebSocket at once, without a close frame (the browser sees 1006). */
  const killSockets = (s: Served) => {
    let killed = 0;
    for (const sub of [...s.bus.hub.subscribers]) {
      if (sub.kind === "websocket") {
        (sub as unknown as { ws: { terminate(): void } }).ws.terminate();
        killed++;
      }
    }
    return killed;
  };

  it("default negotiation: a WebSocket killed mid-stream comes back on WebSocket, nothing lost or doubled", async () => {
    const { page, s } = await open();
    await page.evaluate((chs) => (window as unknown as { follow: (o: object, c: string[]) => void }).follow({}, chs), CHANNELS);
    await subscribed(page, "websocket");
    let killed = 0;
    await publishAll(s, async () => {
      killed = killSockets(s);
      await waitFor(() => s.bus.stats().subscribers.websocket === 1, "the WebSocket back");
    });
    await expectAll(page);
    expect(killed).toBe(1);
    // A cut is not a failure: the same transport, resumed from its positions.
    expect(await seen(page)).toEqual(["long-poll", "websocket"]);
  });

  it("default negotiation: a WebSocket killed mid-stream and refused gives way to SSE and comes back, nothing lost or doubled", async () => {
    const { page, s } = await open();
    await page.evaluate(
      (chs) => (window as unknown as { follow: (o: object, c: string[]) => void }).follow({ retryTransportInterval: 300 }, chs),
      CHANNELS,
    );
    await subscribed(page, "websocket");
    let killed = 0;
    await publishAll(s, async () => {
      s.refuseUpgrades = true;
      killed = killSockets(s);
      await page.waitForFunction(() => (window as unknown as { seen: string[] }).seen.includes("sse"), null, {
        timeout: 10_000,
        polling: 10,
      });
      s.refuseUpgrades = false;
    });
    await page.waitForFunction(() => (window as unknown as { bus: { transport: string } }).bus.transport === "websocket", null, {
      timeout: 15_000,
      polling: 20,
    });
    await expectAll(page);
    expect(killed).toBe(1);
    expect(await seen(page)).toEqual(["long-poll", "websocket", "sse", "websocket"]);
  });

  it("default negotiation: 200 requests get 200 replies in order, each run once, while the WebSocket is killed and refused, then back", async () => {
    const { page, s } = await open();
    const runs = new Map<number, number>();
    s.bus.handle("n", (n) => {
      runs.set(n as number, (runs.get(n as number) ?? 0) + 1);
      return (n as number) * 10;
    });
    await page.evaluate(
      (chs) => (window as unknown as { follow: (o: object, c: string[]) => void }).follow({ retryTransportInterval: 300 }, chs),
      CHANNELS,
    );
    await subscribed(page, "websocket");
    const replies = () => page.evaluate(() => (window as unknown as { replies: unknown[] }).replies);
    await page.evaluate(() => (window as unknown as { askAll: (n: number) => void }).askAll(200));
    await page.waitForFunction(() => (window as unknown as { replies: unknown[] }).replies.length >= 60, null, { timeout: 15_000, polling: 10 });
    s.refuseUpgrades = true;
    expect(killSockets(s)).toBe(1);
    await page.waitForFunction(() => (window as unknown as { seen: string[] }).seen.includes("sse"), null, { timeout: 10_000, polling: 10 });
    s.refuseUpgrades = false;
    await page.waitForFunction(() => (window as unknown as { replies: unknown[] }).replies.length >= 200, null, { timeout: 30_000, polling: 20 });
    expect(await replies()).toEqual(Array.from({ length: 200 }, (_, i) => (i + 1) * 10));
    expect([...runs.values()].every((k) => k === 1) && runs.size === 200).toBe(true);
    await page.waitForFunction(() => (window as unknown as { bus: { transport: string } }).bus.transport === "websocket", null, { timeout: 15_000, polling: 20 });
  });

  it("a hidden tab drops to background polling, and a visible one goes back to its WebSocket", async () => {
    const { page, s } = await open();
    await page.evaluate(
      (chs) =>
        (window as unknown as { follow: (o: object, c: string[]) => void }).follow({ backgroundCallbackInterval: 200 }, chs),
      CHANNELS,
    );
    await subscribed(page, "websocket");
    await page.evaluate(() => (window as unknown as { setHidden: (h: boolean) => void }).setHidden(true));
    expect(await page.evaluate(() => (window as unknown as { bus: { transport: string } }).bus.transport)).toBe("poll");
    // The socket is closed on the server too: nothing held open for a hidden tab.
    await expect.poll(() => s.bus.stats().subscribers.websocket, { timeout: 5000 }).toBe(0);
    await publishAll(s, () => page.evaluate(() => (window as unknown as { setHidden: (h: boolean) => void }).setHidden(false)));
    await expectAll(page);
    expect(await seen(page)).toEqual(["long-poll", "websocket", "poll", "websocket"]);
  });

  it("alwaysLongPoll keeps the live transport in a hidden tab", async () => {
    const { page, s } = await open();
    await page.evaluate(
      (chs) => (window as unknown as { follow: (o: object, c: string[]) => void }).follow({ alwaysLongPoll: true }, chs),
      CHANNELS,
    );
    await subscribed(page, "websocket");
    await page.evaluate(() => (window as unknown as { setHidden: (h: boolean) => void }).setHidden(true));
    await publishAll(s);
    await expectAll(page);
    expect(await seen(page)).toEqual(["long-poll", "websocket"]);
    expect(s.bus.stats().subscribers.websocket).toBe(1);
  });

  it("the bundle works in a plain <script> page as message-bus-client's global", async () => {
    const { page, s } = await open();
    await page.evaluate((chs) => (window as unknown as { follow: (o: null, c: string[]) => void }).follow(null, chs), CHANNELS);
    await subscribed(page, "websocket");
    await publishAll(s);
    await expectAll(page);
    const api = await page.evaluate(() => {
      const MB = (window as unknown as { MessageBus: Record<string, unknown> & (new () => object) }).MessageBus;
      return {
        status: (MB.status as () => string)(),
        baseUrl: MB.baseUrl,
        instance: new MB() instanceof MB,
        unsubscribed: (MB.unsubscribe as (c: string) => boolean)("/b/*"),
      };
    });
    expect(api).toEqual({ status: "started", baseUrl: "/", instance: true, unsubscribed: true });
    expect(await page.evaluate(() => localStorage.getItem("cometbus:transport:" + location.origin + "/message-bus"))).toBe("websocket");

    // The next visit starts on the transport that worked last time, with no long-poll first.
    await page.reload();
    await page.evaluate((chs) => (window as unknown as { follow: (o: null, c: string[]) => void }).follow(null, chs), CHANNELS);
    await subscribed(page, "websocket");
    expect(await seen(page)).toEqual(["websocket"]);
  });
});
