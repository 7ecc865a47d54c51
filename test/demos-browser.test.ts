import { build } from "esbuild";
import { Hono } from "hono";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { MessageBus } from "../server/index.js";
import { demoApp } from "../server/demo.js";
import type { Listening } from "../server/node/listen.js";
import { launchChromium } from "./helpers/browser.js";
import { hasChromium, requireService } from "./helpers/services.js";

/** Set to a directory (e.g. demos/screenshots) to save what the layout test looks at. */
const SCREENSHOTS = process.env.DEMO_SCREENSHOTS;
const VIEWPORTS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;

const enabled = requireService("chromium", hasChromium(), "apt-get install chromium");

/** The browser bundle from the current source, as scripts/build.mjs builds it (dist/ may be stale). */
async function clientBundle(): Promise<string> {
  const out = await build({
    entryPoints: [new URL("../client/iife.ts", import.meta.url).pathname],
    bundle: true,
    format: "iife",
    target: "es2019",
    write: false,
  });
  return out.outputFiles[0].text;
}

/** `npm start`'s app (demoApp) with the bundle it would serve from dist/ built fresh. */
async function demoServer(bus: MessageBus): Promise<Listening> {
  const js = await clientBundle();
  const app = new Hono();
  app.get(`${bus.options.base}/client.js`, (c) => c.body(js, 200, { "Content-Type": "text/javascript; charset=utf-8" }));
  app.route("/", demoApp(bus));
  return bus.listen(0, "127.0.0.1", app);
}

const PANES = ["websocket", "sse", "long-poll", "poll", "auto"] as const;

interface PaneState {
  received: number;
  lost: number;
  duplicates: number;
  live: boolean;
  transport: string;
  requests: number;
}

/** What each pane of the comparison page shows, read from the page itself. */
function readPanes(page: Page): Promise<Record<string, PaneState>> {
  return page.evaluate(() => {
    const num = (el: Element | null) => Number((el?.textContent ?? "").replace(/,/g, ""));
    const out: Record<string, PaneState> = {};
    for (const el of document.querySelectorAll<HTMLElement>(".pane")) {
      out[el.dataset.pane!] = {
        received: num(el.querySelector('[data-k="received"]')),
        lost: num(el.querySelector('[data-k="lost"]')),
        duplicates: num(el.querySelector('[data-k="duplicates"]')),
        live: el.dataset.live === "true",
        transport: (el.querySelector('[data-k="transport"]') as HTMLElement).dataset.transport ?? "",
        requests: num(el.querySelector('[data-k="requests"]')),
      };
    }
    return out;
  });
}

/** Waits until every pane shows `count` messages; then the caller asserts exactly what they show. */
async function untilAllReceived(page: Page, count: number): Promise<void> {
  try {
    await page.waitForFunction(
      (n) => [...document.querySelectorAll('.pane [data-k="received"]')].every((e) => e.textContent === n),
      count.toLocaleString("en-US"),
      { timeout: 30_000 },
    );
  } catch (e) {
    // Say which pane was stuck, on what, and what the page saw happen.
    const panes = await readPanes(page);
    const log = await page.locator("#log li").allTextContents();
    throw new Error(`not every pane reached ${count}: ${JSON.stringify(panes)}\nlog:\n${log.join("\n")}`, { cause: e });
  }
}

function expectAllClean(panes: Record<string, PaneState>, count: number): void {
  expect(Object.keys(panes)).toEqual([...PANES]);
  for (const id of PANES) {
    expect({ id, received: panes[id].received, lost: panes[id].lost, duplicates: panes[id].duplicates }).toEqual({
      id,
      received: count,
      lost: 0,
      duplicates: 0,
    });
  }
}

/** Elements whose text is cut off, and whether the page scrolls sideways: both unreadable on a phone. */
function overflow(page: Page): Promise<{ sideways: boolean; clipped: string[] }> {
  return page.evaluate(() => {
    const sel = ".stats dt, .stats dd, .pane h2, .pane .transport, .tally, .topbar a, button, select, .msg .meta, .people li";
    const clipped = [...document.querySelectorAll<HTMLElement>(sel)]
      .filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.textContent?.trim()}`);
    return { sideways: document.documentElement.scrollWidth > window.innerWidth, clipped };
  });
}

async function shoot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await page.waitForTimeout(600); // let the last count's flash fade
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png` });
}

/** The newest line of the page's event log. */
async function lastLog(page: Page): Promise<string> {
  return (await page.locator("#log li").first().textContent())!.replace(/^\d\d:\d\d:\d\d/, "");
}

describe.runIf(enabled)("demo pages in Chromium", () => {
  let bus: MessageBus;
  let server: Listening;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    bus = new MessageBus({ onError: () => {} });
    await bus.ready();
    server = await demoServer(bus);
    browser = await launchChromium();
  });

  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close().catch(() => {});
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function newPage(): Promise<Page> {
    const context = await browser.newContext();
    contexts.push(context);
    return context.newPage();
  }

  it("comparison page: every pane gets every burst once, across cut streams, cut long-polls, dropped WebSockets and a reset", async () => {
    const page = await newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${server.url}/compare.html`);

    // Every pane connected, and the negotiating one settled on the best transport.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll<HTMLElement>(".pane")].every((p) => p.dataset.live === "true") &&
        document.querySelector<HTMLElement>('[data-pane="auto"] [data-k="transport"]')?.dataset.transport === "websocket",
      undefined,
      { timeout: 20_000 },
    );
    const start = await readPanes(page);
    expect(Object.fromEntries(PANES.map((id) => [id, start[id].transport]))).toEqual({
      websocket: "websocket",
      sse: "sse",
      "long-poll": "long-poll",
      poll: "poll",
      auto: "websocket",
    });

    await page.click("#publish-burst");
    await untilAllReceived(page, 100);
    expectAllClean(await readPanes(page), 100);
    await expect
      .poll(() => page.locator("#verdict").textContent())
      .toBe("✓ All 5 panes agree: 100 messages each, none lost, none doubled");

    // Cut the open streams (the SSE pane's and the long-poll pane's chunked response) mid-response.
    // The negotiating pane is on WebSocket: the breaks before "Drop WebSockets" hit the forced panes only.
    await page.click("#cut-streams");
    await page.waitForFunction(() => document.querySelector("#log li")?.textContent?.includes("Cut "));
    expect(await lastLog(page)).toMatch(/^Cut [1-9]\d* streams? \(SSE, chunked long-poll\) mid-response: they resume from their positions$/);
    await page.click("#publish-burst");
    await untilAllReceived(page, 200);
    expectAllClean(await readPanes(page), 200);

    // The long-poll pane's held request, cut too (a plain or chunked long-poll, whichever is held).
    await page.click("#drop-polls");
    await page.waitForFunction(() => document.querySelector("#log li")?.textContent?.includes("held long-poll"));
    await page.click("#publish-burst");
    await untilAllReceived(page, 300);
    const afterCuts = await readPanes(page);
    expectAllClean(afterCuts, 300);
    expect(afterCuts.auto.transport).toBe("websocket");

    // Drop both WebSockets (the forced pane's and the negotiating pane's) and publish while they are down.
    await page.click("#drop-ws");
    await page.waitForFunction(() => document.querySelector("#log li")?.textContent?.includes("Dropped"));
    expect(await lastLog(page)).toBe("Dropped 2 WebSocket connections without a close frame: watch them reconnect and catch up");
    await page.click("#publish-burst");
    await untilAllReceived(page, 400);
    const afterDrop = await readPanes(page);
    expectAllClean(afterDrop, 400);
    expect(afterDrop.websocket.transport).toBe("websocket");
    expect(afterDrop.websocket.requests).toBe(2); // the first socket and the one it reconnected with

    // A new epoch: ids restart at 1, every pane is told and keeps counting without a false loss.
    await page.click("#reset-epoch");
    await page.waitForFunction(() => document.querySelectorAll('.pane [data-k="resets"]:not(:empty)').length === 5, undefined, {
      timeout: 20_000,
    });
    await page.click("#publish-burst");
    await untilAllReceived(page, 500);
    expectAllClean(await readPanes(page), 500);
    expect(await page.locator('.pane [data-k="resets"]').allTextContents()).toEqual(Array(5).fill("1 epoch reset"));
    expect(await bus.lastId("/demo/compare")).toBe(100);
    expect(errors).toEqual([]);
  });

  it("chat: a public message reaches everyone, a private one only its target (two windows of one browser too)", async () => {
    const alice = await newPage();
    // Bob and Carol share one browser context, as two windows of one browser would: same cookie jar.
    const shared = await browser.newContext();
    contexts.push(shared);
    const bob = await shared.newPage();
    const carol = await shared.newPage();
    const errors: string[] = [];
    for (const page of [alice, bob, carol]) page.on("pageerror", (e) => errors.push(e.message));

    for (const [page, name] of [
      [alice, "alice"],
      [bob, "bob"],
      [carol, "carol"],
    ] as const) {
      await page.goto(`${server.url}/chat.html`);
      await page.fill("#name", name);
      await page.click("#join button");
      await page.waitForFunction(() => document.getElementById("transport")?.textContent?.startsWith("via "));
    }
    const texts = (page: Page) => page.locator("#messages .msg .text").allTextContents();
    const send = async (page: Page, text: string, to = "") => {
      if (to) await page.selectOption("#to", to, { timeout: 25_000 });
      else await page.selectOption("#to", "");
      await page.fill("#text", text);
      await page.press("#text", "Enter");
    };

    await send(alice, "hello all");
    for (const page of [alice, bob, carol]) await expect.poll(() => texts(page), { timeout: 10_000 }).toEqual(["hello all"]);

    await send(alice, "psst bob", "bob");
    await expect.poll(() => texts(bob), { timeout: 10_000 }).toEqual(["hello all", "psst bob"]);
    await send(alice, "bye all");
    // Carol's channel is the same one, in order: once "bye all" is there, the private line was passed over.
    await expect.poll(() => texts(carol), { timeout: 10_000 }).toEqual(["hello all", "bye all"]);
    await expect.poll(() => texts(bob), { timeout: 10_000 }).toEqual(["hello all", "psst bob", "bye all"]);
    await expect.poll(() => texts(alice), { timeout: 10_000 }).toEqual(["hello all", "psst bob", "bye all"]);

    expect(await bob.locator("#messages .msg.private .badge").allTextContents()).toEqual(["private to you"]);
    expect(await alice.locator("#messages .msg.private .badge").allTextContents()).toEqual(["private to bob"]);
    expect(await carol.locator("#messages .msg.private").count()).toBe(0);
    // The private line is in the backlog, stored for bob and alice only.
    const stored = await bus.backlog("/chat/room");
    expect(stored.map((m) => (m.data as { text: string }).text)).toEqual(["hello all", "psst bob", "bye all"]);

    // Presence: everyone here, you first; leaving is seen by the others.
    const people = (page: Page) => page.locator("#people li").evaluateAll((lis) => lis.map((li) => (li as HTMLElement).dataset.name));
    await expect.poll(() => people(alice), { timeout: 10_000 }).toEqual(["alice", "bob", "carol"]);
    await expect.poll(() => people(carol), { timeout: 10_000 }).toEqual(["carol", "alice", "bob"]);
    await carol.click("#leave");
    await expect.poll(() => people(alice), { timeout: 10_000 }).toEqual(["alice", "bob"]);
    await expect.poll(() => people(bob), { timeout: 10_000 }).toEqual(["bob", "alice"]);
    expect(errors).toEqual([]);
  });

  for (const [device, viewport] of Object.entries(VIEWPORTS)) {
    it(`${device} (${viewport.width}×${viewport.height}): the pages fit, nothing is cut off or scrolls sideways`, async () => {
      const context = await browser.newContext({ viewport });
      contexts.push(context);
      const page = await context.newPage();

      await page.goto(`${server.url}/`);
      expect(await overflow(page)).toEqual({ sideways: false, clipped: [] });
      await shoot(page, `index-${device}`);

      await page.goto(`${server.url}/compare.html`);
      await page.waitForFunction(() => [...document.querySelectorAll<HTMLElement>(".pane")].every((p) => p.dataset.live === "true"));
      await page.click("#publish-burst");
      await untilAllReceived(page, 100);
      // Some live traffic, and a dropped socket, so the charts and the log have something to show.
      await page.click("#drop-ws");
      await page.selectOption("#rate", "50");
      await page.click("#steady");
      await page.waitForFunction(() => Number(document.querySelector('[data-pane="websocket"] [data-k="received"]')?.textContent) >= 140);
      await page.click("#steady");
      await page.waitForFunction(() => {
        const counts = [...document.querySelectorAll('.pane [data-k="received"]')].map((e) => e.textContent);
        return counts.every((c) => c === counts[0]) && document.querySelector("#verdict")?.getAttribute("data-state") === "ok";
      });
      expect(await overflow(page)).toEqual({ sideways: false, clipped: [] });
      await shoot(page, `compare-${device}`);

      // Two people talking; the shot is of the second, with a private line and someone typing.
      const other = await (await browser.newContext({ viewport: VIEWPORTS.desktop })).newPage();
      contexts.push(other.context());
      const room = `${server.url}/chat.html`;
      const join = async (p: Page, name: string) => {
        await p.goto(room);
        await p.fill("#name", name);
        await p.click("#join button");
        await p.waitForFunction(() => document.getElementById("transport")?.textContent?.startsWith("via "));
      };
      const say = async (p: Page, text: string, to = "") => {
        await p.selectOption("#to", to, { timeout: 25_000 });
        await p.fill("#text", text);
        await p.press("#text", "Enter");
        await p.waitForFunction((t) => [...document.querySelectorAll("#messages .text")].some((e) => e.textContent === t), text);
      };
      const me = device === "phone" ? "Bob" : "Ada";
      await bus.reset(); // an empty room: no lines left by the other tests
      await join(other, "Grace");
      await join(page, me);
      await say(other, "Hi! Is this one going over WebSocket too?");
      await say(page, "It is, see the badge. Drop the sockets on the other page: nothing gets lost.");
      await say(other, "Just did. Every pane still agrees.");
      await say(other, `Psst ${me}, this line is only for you.`, me);
      await page.waitForFunction(() => document.querySelectorAll("#messages .msg").length === 4);
      await other.fill("#text", "typing something");
      await page.waitForFunction(() => document.getElementById("typing")?.textContent?.includes("typing"));
      expect(await overflow(page)).toEqual({ sideways: false, clipped: [] });
      await shoot(page, `chat-${device}`);
    });
  }
});
