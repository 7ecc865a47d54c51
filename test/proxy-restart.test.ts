/**
 * A memory-backed server restarts on the same port (its ids start over in a new epoch): the default
 * client in Chromium notices the epoch, calls onReset once per channel, and then receives every
 * message of the new server, directly and through the friendly nginx.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./helpers/browser.js";
import { startNginx, type Nginx } from "./helpers/nginx.js";
import { hasChromium, hasNginx, requireService } from "./helpers/services.js";
import { readRecord, startPageServer, type PageRecord, type PageServer } from "./fixtures/proxy-page.js";
import { waitFor } from "./helpers/wait.js";

const enabled =
  requireService("chromium", hasChromium(), "apt-get install chromium") &&
  requireService("nginx", hasNginx(), "apt-get install nginx-light");

const CHANNELS = ["/restart/a", "/restart/b", "/restart/c"];
const PER_CHANNEL = 10;

type Run = PageRecord["received"][number] & { data: { run: number } };

/** The page's record once `cond` holds; read every 100 ms (a round trip into the page), for up to 30 s. */
async function recordWhen(page: Page, cond: (rec: PageRecord) => boolean, what: string): Promise<PageRecord> {
  let rec!: PageRecord;
  const seen = () => JSON.stringify({ resets: rec.resets, received: rec.received.length, transports: rec.transports.map((t) => t.name), transport: rec.transport, last: rec.received.slice(-3) });
  await waitFor(async () => cond((rec = await readRecord(page))), () => `${what}: ${seen()}`, 30_000, 100);
  return rec;
}

/** `count` messages per channel of `run`: the k-th on each channel is {run, i: k}. */
async function publish(server: PageServer, run: number, from: number, count: number): Promise<void> {
  for (let k = from; k < from + count; k++) {
    for (const ch of CHANNELS) await server.bus.publish(ch, { run, i: k, t: Date.now() });
  }
}

const ofRun = (rec: PageRecord, run: number, ch: string) =>
  (rec.received as Run[]).filter((r) => r.data.run === run && r.ch === ch);

describe.runIf(enabled)("server restart with the memory backend", () => {
  let browser: Browser;
  let first: PageServer | undefined;
  let second: PageServer | undefined;
  let friendly: Nginx | undefined;
  let hostile: Nginx | undefined;

  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await friendly?.stop();
    await hostile?.stop();
    await first?.close();
    await second?.close();
    await browser?.close();
  });

  it("clients notice the new epoch, reset each channel once, and get every later message", async () => {
    first = await startPageServer(CHANNELS);
    const port = first.port;
    friendly = await startNginx("friendly", port);
    hostile = await startNginx("all", port);
    const where = ["direct", "through the friendly nginx", "through the all-hostile nginx"];
    const pages = await Promise.all(
      [first.url, friendly.url, hostile.url].map(async (url) => {
        const page = await (await browser.newContext()).newPage();
        await page.goto(url + "/");
        return page;
      }),
    );

    await publish(first, 1, 1, PER_CHANNEL);
    for (const page of pages) await recordWhen(page, (rec) => rec.received.length === CHANNELS.length * PER_CHANNEL, "the first run");

    await first.close();
    first = undefined;
    second = await startPageServer(CHANNELS, port);
    const restartedAt = Date.now();
    // Some published before the clients are back (they come from the new epoch's backlog)...
    await publish(second, 2, 1, PER_CHANNEL / 2);
    for (const page of pages) await recordWhen(page, (rec) => rec.resets.length >= CHANNELS.length, "onReset on every channel");
    // ...and some after (they come live).
    await publish(second, 2, PER_CHANNEL / 2 + 1, PER_CHANNEL / 2);

    const ids = Array.from({ length: PER_CHANNEL }, (_, k) => k + 1);
    for (const [n, page] of pages.entries()) {
      const via = where[n];
      let rec = await recordWhen(page, (r) => r.received.length >= 2 * CHANNELS.length * PER_CHANNEL, `the second run (${via})`);
      // A grace period for a late duplicate or a second reset (safety margin, not a measurement).
      await new Promise((r) => setTimeout(r, 1000));
      rec = await readRecord(page);
      expect(rec.errors, via).toEqual([]);
      expect(rec.resets.map((r) => r.ch).sort(), via).toEqual([...CHANNELS].sort());
      for (const ch of CHANNELS) {
        expect(ofRun(rec, 1, ch).map((r) => r.m), `${via} ${ch} before`).toEqual(ids);
        const after = ofRun(rec, 2, ch);
        expect(after.map((r) => r.m), `${via} ${ch} after`).toEqual(ids);
        expect(after.map((r) => r.data.i), `${via} ${ch} payloads`).toEqual(ids);
        // The reset came before anything of the new epoch on that channel.
        const reset = rec.resets.find((r) => r.ch === ch)!;
        expect(reset.seq, `${via} ${ch}: onReset before the new epoch's messages`).toBeLessThan(after[0].seq);
        expect(reset.seq, `${via} ${ch}: onReset after the old epoch's messages`).toBeGreaterThan(ofRun(rec, 1, ch).at(-1)!.seq);
      }
      expect(rec.received.length, via).toBe(2 * CHANNELS.length * PER_CHANNEL);
      const back = Math.min(...rec.resets.map((r) => r.at)) - restartedAt;
      console.log(`restart (${via}): onReset ${back} ms after the new server listened; transports ${rec.transports.map((t) => t.name).join(" → ")}; final ${rec.transport}`);
      await page.context().close();
    }
  }, 90_000);
});
