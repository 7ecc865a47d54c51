#!/usr/bin/env node --expose-gc
/**
 * Tabs sharing one connection (README, "Tabs"), in Chromium against a real server in this process:
 *   1. ten pages of one browser context subscribed, with `shareTabs: false` (every tab its own
 *      connection, as before) and with sharing (the default): connections the server holds, and its
 *      heap (after a GC) and RSS above the same server with no page; per transport (websocket, long-poll).
 *   2. handover: four pages; the leader page is closed, a message published at once, and the time
 *      until every remaining page has it is taken; a new page joins to keep four; 20 times. The
 *      baseline, in the same run, is the same publish → every page with no handover (20 times).
 *
 *   node --expose-gc bench/tabs.mjs [--tabs 10] [--handovers 20] [--md FILE]
 * Needs `npm run build` (the server and client bundle from dist/) and /usr/bin/chromium.
 */
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: { tabs: { type: "string", default: "10" }, handovers: { type: "string", default: "20" }, md: { type: "string" } },
});
const TABS = Number(args.tabs);
const HANDOVERS = Number(args.handovers);
const { MessageBus } = await import(new URL("../dist/server/index.js", import.meta.url).href);

const PAGE = `<!doctype html><html><head><script src="/message-bus/client.js"></script></head><body><script>
  window.got = [];
  window.follow = function (o) { window.bus = new MessageBus(o); bus.subscribe("/bench", function (d) { got.push(d); }, -1); };
</script></body></html>`;

const gc = () => (globalThis.gc ? globalThis.gc() : undefined);
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

async function serve() {
  const bus = new MessageBus({ onError: () => {}, longPollTimeout: 25_000 });
  await bus.ready();
  const app = new Hono();
  app.route(bus.options.base, bus.routes());
  app.get("/", (c) => c.html(PAGE));
  const l = await bus.listen(0, "127.0.0.1", app);
  return { ...l, bus };
}

const held = (bus) => Object.values(bus.stats().subscribers).reduce((a, b) => a + b, 0);

async function openTab(ctx, url, options) {
  const page = await ctx.newPage();
  await page.goto(url + "/");
  await page.evaluate((o) => window.follow(o), options);
  await page.waitForFunction(() => window.bus.transport !== null && window.bus.subscription()["/bench"] >= 0, null, { timeout: 60_000, polling: 20 });
  return page;
}

/** Publishes `data`; resolves with the ms until every page has it. */
async function reachAll(bus, pages, data) {
  const t = performance.now();
  await bus.publish("/bench", data);
  await Promise.all(pages.map((p) => p.waitForFunction((d) => window.got.includes(d), data, { timeout: 60_000, polling: "raf" })));
  return performance.now() - t;
}

function memory() {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

async function footprint(browser, transport, share) {
  const s = await serve();
  const ctx = await browser.newContext();
  try {
    // One page first, so that the client bundle, the routes and the JIT are warm in both cases.
    const warm = await openTab(ctx, s.url, { transports: [transport], shareTabs: share });
    await warm.close();
    await pause(300);
    const before = memory();
    const pages = [];
    const opened = Promise.all(Array.from({ length: TABS }, () => openTab(ctx, s.url, { transports: [transport], shareTabs: share })));
    // Without sharing, long-poll tabs past the sixth wait for a free connection: count what is held.
    const done = await Promise.race([opened.then((p) => (pages.push(...p), true)), pause(20_000).then(() => false)]);
    await pause(500);
    const after = memory();
    return {
      transport,
      share,
      connections: held(s.bus),
      allSubscribed: done,
      heapKB: (after.heap - before.heap) / 1024,
      rssKB: (after.rss - before.rss) / 1024,
    };
  } finally {
    await ctx.close();
    await s.close();
  }
}

const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function handovers(browser, transport) {
  const s = await serve();
  const ctx = await browser.newContext();
  try {
    const opts = { transports: [transport] };
    const pages = [];
    for (let i = 0; i < 4; i++) pages.push(await openTab(ctx, s.url, opts));
    const steady = [];
    for (let i = 0; i < HANDOVERS; i++) steady.push(await reachAll(s.bus, pages, `steady-${i}`));
    const times = [];
    for (let i = 0; i < HANDOVERS; i++) {
      const roles = await Promise.all(pages.map((p) => p.evaluate(() => window.bus.tabRole)));
      const leader = pages[roles.indexOf("leader")];
      pages.splice(pages.indexOf(leader), 1);
      const t = performance.now();
      await leader.close();
      await s.bus.publish("/bench", `after-${i}`);
      await Promise.all(pages.map((p) => p.waitForFunction((d) => window.got.includes(d), `after-${i}`, { timeout: 60_000, polling: "raf" })));
      times.push(performance.now() - t);
      pages.push(await openTab(ctx, s.url, opts));
      await pause(200);
    }
    return { transport, steadyP50: pct(steady, 50), steadyMax: Math.max(...steady), p50: pct(times, 50), max: Math.max(...times) };
  } finally {
    await ctx.close();
    await s.close();
  }
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"],
});
const load0 = loadavg()[0];
const rows = [];
const hand = [];
try {
  for (const transport of ["websocket", "long-poll"]) {
    for (const share of [false, true]) rows.push(await footprint(browser, transport, share));
    hand.push(await handovers(browser, transport));
  }
} finally {
  await browser.close();
}

const f = (n, d = 0) => n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
const lines = [
  `# Tabs sharing one connection (bench/tabs.mjs)`,
  ``,
  `${new Date().toISOString()}, ${TABS} tabs, ${HANDOVERS} handovers, load ${f(load0, 2)} at start (2 cores, shared).`,
  ``,
  `## ${TABS} tabs of one browser context`,
  ``,
  `| transport | shareTabs | connections held | all tabs subscribed | server heap + KB | server RSS + KB |`,
  `|---|---|---|---|---|---|`,
  ...rows.map((r) => `| ${r.transport} | ${r.share} | ${r.connections} | ${r.allSubscribed ? "yes" : "no (20 s)"} | ${f(r.heapKB)} | ${f(r.rssKB)} |`),
  ``,
  `## Handover: leader page closed → the next message in every remaining page (4 pages)`,
  ``,
  `| transport | steady p50 ms | steady worst ms | handover p50 ms | handover worst ms | p50 ratio |`,
  `|---|---|---|---|---|---|`,
  ...hand.map((h) => `| ${h.transport} | ${f(h.steadyP50, 1)} | ${f(h.steadyMax, 1)} | ${f(h.p50, 1)} | ${f(h.max, 1)} | ${f(h.p50 / h.steadyP50, 1)} × |`),
  ``,
  `Steady: the same publish → every page, no handover (the baseline of this run). Memory is the server's`,
  `process (this one; Chromium runs apart) after a GC, above the same server with no page; heap and RSS`,
  `of a few connections are within the noise of a few hundred KB.`,
];
const md = lines.join("\n") + "\n";
process.stdout.write(md);
writeFileSync(args.md ?? new URL("./results/tabs-latest.md", import.meta.url), md);
