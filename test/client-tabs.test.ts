/**
 * Tabs sharing one connection (README, "Tabs"): several pages of one Chromium context, served by a real
 * server with the browser bundle, one leader holding the connection and handing it over on close or
 * crash; targeting by client id through the shared connection; another context sharing nothing.
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

/** A page that follows channels and records what arrives, with the bus's role and transport. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>cometbus tabs test</title>
<script src="/message-bus/client.js"></script></head>
<body><script>
  window.got = {};
  window.follow = function (options, channels, lastId) {
    var bus = new MessageBus(options);
    window.bus = bus;
    channels.forEach(function (ch) {
      got[ch] = [];
      bus.subscribe(ch, function (data, globalId, messageId) { got[ch].push([messageId, data]); }, lastId);
    });
    return bus.clientId;
  };
  ${PAGE_HELPERS}
</script></body></html>`;

interface Served extends Listening {
  bus: ServerBus;
}

/** The user is the `user` cookie, so that two contexts are two users. */
async function serve(longPollTimeout = 2000): Promise<Served> {
  const bus = new ServerBus({
    onError: () => {},
    longPollTimeout,
    userIdLookup: (c) => /(?:^|; )user=(\w+)/.exec(c.req.header("cookie") ?? "")?.[1] ?? null,
  });
  await bus.ready();
  const app = new Hono();
  app.route(bus.options.base, bus.routes());
  app.get("/", (c) => c.html(PAGE));
  const l = await bus.listen(0, "127.0.0.1", app);
  return { ...l, bus };
}

let browser: Browser | undefined;
const contexts: BrowserContext[] = [];
let server: Served | undefined;

beforeAll(async () => {
  if (enabled) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  for (const c of contexts.splice(0)) await c.close();
  await server?.close();
  server = undefined;
});

async function context(user: string): Promise<BrowserContext> {
  const c = await browser!.newContext();
  contexts.push(c);
  await c.addCookies([{ name: "user", value: user, url: server!.url }]);
  return c;
}

/** A page of `ctx` following `channels` from `lastId`; resolves with the page and its client id. */
async function tab(ctx: BrowserContext, channels: string[], options: object = {}, lastId = -1): Promise<{ page: Page; id: string }> {
  const page = await ctx.newPage();
  await page.goto(server!.url + "/");
  const id = await page.evaluate(
    ([o, chs, k]) => (window as unknown as { follow: (o: object, c: string[], k: number) => string }).follow(o as object, chs as string[], k as number),
    [options, channels, lastId] as const,
  );
  return { page, id };
}

/** Until the page's bus has a transport and a position (≥ 0) on every channel. */
async function ready(page: Page, channels: string[]): Promise<void> {
  await page.waitForFunction(
    (chs) => {
      const w = window as unknown as { bus: { transport: string | null; subscription(): Record<string, number> } };
      const sub = w.bus.subscription();
      return w.bus.transport !== null && chs.every((ch) => sub[ch] >= 0);
    },
    channels,
    { timeout: 15_000, polling: 20 },
  );
}

const got = (page: Page, ch: string) =>
  page.evaluate((c) => (window as unknown as { got: Record<string, [number, unknown][]> }).got[c], ch);

const role = (page: Page) => page.evaluate(() => (window as unknown as { bus: { tabRole: string | null } }).bus.tabRole);

/** Every message of the channel from `from`+1 to `to`, once, in order. */
async function expectRange(page: Page, ch: string, from: number, to: number): Promise<void> {
  await page.waitForFunction(
    ([c, n]) => ((window as unknown as { got: Record<string, unknown[]> }).got[c as string]?.length ?? 0) >= (n as number),
    [ch, to - from] as const,
    { timeout: 30_000, polling: 20 },
  );
  // A duplicate would trail the last batch; give it a moment to show.
  await page.waitForTimeout(100);
  const ids = (await got(page, ch)).map((m) => m[0]);
  expect(ids).toEqual(Array.from({ length: to - from }, (_, i) => from + i + 1));
}

/** Connections the server holds for browsers, whatever their transport. */
const connections = (s: Served) => Object.values(s.bus.stats().subscribers as Record<string, number>).reduce((a, b) => a + b, 0);

async function publishSome(s: Served, ch: string, n: number, midway?: () => Promise<void>): Promise<void> {
  for (let i = 1; i <= n; i++) {
    await s.bus.publish(ch, i);
    if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    if (i === Math.floor(n / 2) && midway) await midway();
  }
}

async function leaderOf(pages: Page[]): Promise<Page> {
  let found: Page | undefined;
  await waitFor(async () => {
    const roles = await Promise.all(pages.map(role));
    found = roles.filter((r) => r === "leader").length === 1 ? pages[roles.indexOf("leader")] : undefined;
    return !!found;
  }, "one leader among the pages");
  return found!;
}

describe.runIf(enabled)("tabs sharing one connection (Chromium)", () => {
  it("five pages: one connection, every page gets every message once, in order", async () => {
    server = await serve();
    const ctx = await context("u1");
    const chs = ["/t/a", "/t/b"];
    const pages = [];
    for (let i = 0; i < 5; i++) pages.push((await tab(ctx, chs)).page);
    for (const p of pages) await ready(p, chs);
    await leaderOf(pages);
    await waitFor(() => connections(server!) === 1, "one connection for five pages");
    for (let i = 1; i <= 100; i++) await server.bus.publish(chs[i % 2], i);
    for (const p of pages) for (const ch of chs) await expectRange(p, ch, 0, 50);
    expect(connections(server)).toBe(1);
  });

  it("tabs whose `headers` differ (another identity) never share: one connection per set of headers", async () => {
    server = await serve();
    const ctx = await context("u1");
    const chs = ["/t/h"];
    const pages = [];
    for (const who of ["a", "b", "a", "b"]) pages.push((await tab(ctx, chs, { headers: { "X-Tab-Token": who } })).page);
    for (const p of pages) await ready(p, chs);
    await waitFor(() => connections(server!) === 2, "two connections: one per set of headers");
    expect((await Promise.all(pages.map(role))).sort()).toEqual(["follower", "follower", "leader", "leader"]);
    for (let i = 1; i <= 10; i++) await server.bus.publish(chs[0], i);
    for (const p of pages) await expectRange(p, chs[0], 0, 10);
  });

  describe.each(["close", "crash"])("the leader's page goes (%s) in a stream of 300", (how) => {
    it("another page leads, every remaining page has all 300 once, in order", async () => {
      server = await serve();
      const ctx = await context("u1");
      const ch = "/t/handover";
      const pages = [];
      for (let i = 0; i < 4; i++) pages.push((await tab(ctx, [ch])).page);
      for (const p of pages) await ready(p, [ch]);
      const leader = await leaderOf(pages);
      const rest = pages.filter((p) => p !== leader);
      await publishSome(server, ch, 300, async () => {
        if (how === "close") await leader.close();
        else {
          // The renderer dies without unload: its locks are freed by the browser, nothing said on the channels.
          const crashed = new Promise((r) => leader.once("crash", r));
          const cdp = await leader.context().newCDPSession(leader);
          // Answered only when the session closes: the crash event is the sign.
          void cdp.send("Page.crash").catch(() => {});
          await crashed;
        }
      });
      const next = await leaderOf(rest);
      expect(next).not.toBe(leader);
      for (const p of rest) await expectRange(p, ch, 0, 300);
      await waitFor(() => connections(server!) === 1, "one connection again");
    });
  });

  it("a page subscribing later at a past lastId gets exactly the backlog after it, and the others nothing twice", async () => {
    server = await serve();
    const ctx = await context("u1");
    const ch = "/t/late";
    const first = (await tab(ctx, [ch])).page;
    await ready(first, [ch]);
    await publishSome(server, ch, 50);
    await expectRange(first, ch, 0, 50);
    const late = (await tab(ctx, [ch], {}, 20)).page;
    await expectRange(late, ch, 20, 50);
    await publishSome(server, ch, 10);
    await expectRange(late, ch, 20, 60);
    await expectRange(first, ch, 0, 60);
    expect(connections(server)).toBe(1);
  });

  it("clientIds: [x] reaches tab x only; another context shares nothing and sees nothing aimed elsewhere", async () => {
    server = await serve();
    const ch = "/t/aimed";
    const a = await context("u1");
    const b = await context("u2");
    const tabsA = [await tab(a, [ch]), await tab(a, [ch]), await tab(a, [ch])];
    const other = await tab(b, [ch]);
    for (const t of [...tabsA, other]) await ready(t.page, [ch]);
    await leaderOf(tabsA.map((t) => t.page));
    await waitFor(() => connections(server!) === 2, "one connection per context");
    expect(await role(other.page)).toBe("leader");
    // Aimed at each tab of A in turn (the leader's too), at user u1, then at everyone.
    for (const t of tabsA) await server.bus.publish(ch, "for " + t.id, { clientIds: [t.id] });
    await server.bus.publish(ch, "for u1", { userIds: ["u1"] });
    await server.bus.publish(ch, "all");
    for (const t of tabsA) {
      await waitFor(async () => (await got(t.page, ch)).some((m) => m[1] === "all"), "the last message in A");
      expect((await got(t.page, ch)).map((m) => m[1])).toEqual(["for " + t.id, "for u1", "all"]);
    }
    await waitFor(async () => (await got(other.page, ch)).some((m) => m[1] === "all"), "the last message in B");
    expect((await got(other.page, ch)).map((m) => m[1])).toEqual(["all"]);
  });

  it("forced long-poll: 8 pages all receive (one held request, not eight)", async () => {
    server = await serve(20_000);
    const ctx = await context("u1");
    const ch = "/t/lp";
    const opts = { transports: ["long-poll"], callbackInterval: 100 };
    const pages = [];
    for (let i = 0; i < 8; i++) pages.push((await tab(ctx, [ch], opts)).page);
    for (const p of pages) await ready(p, [ch]);
    await publishSome(server, ch, 20);
    for (const p of pages) await expectRange(p, ch, 0, 20);
  });

  it("requests from every tab run once each, in order, while the leader's page closes", async () => {
    server = await serve();
    const runs = new Map<string, number>();
    server.bus.handle("n", (n, ctx) => {
      const key = `${ctx.clientId}:${n}`;
      runs.set(key, (runs.get(key) ?? 0) + 1);
      return n;
    });
    const ctx = await context("u1");
    const ch = "/t/requests";
    const pages = [];
    for (let i = 0; i < 3; i++) pages.push((await tab(ctx, [ch])).page);
    for (const p of pages) await ready(p, [ch]);
    const leader = await leaderOf(pages);
    const followers = pages.filter((p) => p !== leader);
    for (const p of followers) await p.evaluate(() => (window as unknown as { askAll: (n: number) => void }).askAll(100));
    await leader.close();
    for (const p of followers) {
      await p.waitForFunction(() => (window as unknown as { replies: unknown[] }).replies.length >= 100, null, { timeout: 30_000, polling: 20 });
      expect(await p.evaluate(() => (window as unknown as { replies: unknown[] }).replies)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    }
    expect(runs.size).toBe(200);
    expect([...runs.values()].every((k) => k === 1)).toBe(true);
  });

  it("hidden tabs: live while any page is visible, background polling once all are hidden, live again when one shows", async () => {
    server = await serve();
    const ctx = await context("u1");
    const ch = "/t/hidden";
    const opts = { backgroundCallbackInterval: 500 };
    const pages = [];
    for (let i = 0; i < 3; i++) pages.push((await tab(ctx, [ch], opts)).page);
    for (const p of pages) await ready(p, [ch]);
    const leader = await leaderOf(pages);
    const transport = (p: Page) => p.evaluate(() => (window as unknown as { bus: { transport: string | null } }).bus.transport);
    const hide = (p: Page, hidden: boolean) => p.evaluate((h) => (window as unknown as { setHidden: (h: boolean) => void }).setHidden(h), hidden);
    await waitFor(async () => (await transport(leader)) === "websocket", "the WebSocket");
    // The leader hidden, the others still visible: the connection stays live.
    await hide(leader, true);
    await hide(pages.find((p) => p !== leader)!, true);
    await new Promise((r) => setTimeout(r, 500));
    expect(await transport(leader)).toBe("websocket");
    for (const p of pages) await hide(p, true);
    for (const p of pages) await waitFor(async () => (await transport(p)) === "poll", "background polling in every page");
    await publishSome(server, ch, 5);
    for (const p of pages) await expectRange(p, ch, 0, 5);
    await hide(pages.find((p) => p !== leader)!, false);
    for (const p of pages) await waitFor(async () => (await transport(p)) === "websocket", "live again in every page");
    expect(connections(server)).toBe(1);
  });
});
