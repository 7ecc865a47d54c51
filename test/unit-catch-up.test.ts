/**
 * What a subscriber is owed from the backlog (server/core/catch-up.ts), against a MemoryBackend and
 * no transport: where each channel starts for -1, -N and k, what is told (`/__status`), and what a
 * trimmed gap, another epoch or entries the client may not see do to it.
 */
import { describe, expect, it } from "vitest";
import { CatchUp } from "../server/core/catch-up.js";
import type { Targets } from "../server/core/backend.js";
import type { Identity } from "../server/core/targeting.js";
import { MemoryBackend } from "../server/index.js";

/** What one catch-up reads from the store per channel and round trip (READ_PAGE in catch-up.ts). */
const READ_PAGE = 256;

const ME: Identity = { clientId: "me", userId: 8, groupIds: [3] };

async function publish(b: MemoryBackend, channel: string, count: number, opts: Targets & { keep?: number } = {}): Promise<void> {
  const { keep = 1000, ...targets } = opts;
  for (let i = 0; i < count; i++) {
    const data = `${channel}#${i}`;
    await b.append({ channel, data, dataJson: JSON.stringify(data), maxBacklogSize: keep, maxBacklogAge: 3600, maxGlobalBacklogSize: 100_000, ...targets });
  }
}

const open = (b: MemoryBackend, asked: Record<string, number>, clientEpoch?: string, who: Identity = ME) =>
  CatchUp.open(b, new Map(Object.entries(asked)), clientEpoch, who);

/** Every page until the catch-up is done: the messages as `channel#id`, and the resets in the order given. */
async function drain(cu: CatchUp, maxBytes = Infinity): Promise<{ ids: string[]; globals: number[]; reset: string[] }> {
  const ids: string[] = [];
  const globals: number[] = [];
  const reset: string[] = [];
  for (let calls = 0; !cu.done; calls++) {
    if (calls > 10_000) throw new Error("the catch-up never finished");
    const page = await cu.next(maxBytes);
    for (const o of page.messages) {
      ids.push(`${o.message.channel}#${o.message.message_id}`);
      globals.push(o.message.global_id);
    }
    reset.push(...page.reset);
  }
  return { ids, globals, reset };
}

const range = (channel: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${channel}#${from + i}`);

describe("where a channel starts", () => {
  it("-1: nothing from the backlog, told where the channel stands", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 5);
    const cu = await open(b, { "/a": -1 });
    expect(cu.start.get("/a")).toBe(5);
    expect(await drain(cu)).toEqual({ ids: [], globals: [], reset: [] });
    expect(cu.positions.get("/a")).toBe(5);
    expect(cu.status()).toEqual({ "/a": 5 });
  });

  it("-1 on a channel never published to: told 0", async () => {
    const cu = await open(new MemoryBackend(), { "/none": -1 });
    expect((await drain(cu)).ids).toEqual([]);
    expect(cu.status()).toEqual({ "/none": 0 });
  });

  it("-N: the last N-1, then nothing to tell", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 5);
    const cu = await open(b, { "/a": -3 });
    expect(cu.start.get("/a")).toBe(3);
    expect((await drain(cu)).ids).toEqual(["/a#4", "/a#5"]);
    expect(cu.status()).toBeNull();
  });

  it("-N beyond the backlog: all of it, and a channel trimmed before it is no gap (nothing was promised)", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 6, { keep: 3 });
    const cu = await open(b, { "/a": -100 });
    expect(cu.start.get("/a")).toBe(0);
    expect(await drain(cu)).toEqual({ ids: range("/a", 4, 6), globals: [4, 5, 6], reset: [] });
    expect(cu.status()).toBeNull();
  });

  it("k: everything after k, then nothing to tell", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 5);
    const cu = await open(b, { "/a": 2 });
    expect(cu.start.get("/a")).toBe(2);
    expect((await drain(cu)).ids).toEqual(["/a#3", "/a#4", "/a#5"]);
    expect(cu.status()).toBeNull();
  });

  it("k at the end: nothing, nothing to tell", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 5);
    const cu = await open(b, { "/a": 5 });
    expect((await drain(cu)).ids).toEqual([]);
    expect(cu.status()).toBeNull();
  });

  it("k beyond the end: the bus was reset, so the channel is reset and goes on as -1 would", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 5);
    const cu = await open(b, { "/a": 9 });
    expect(cu.start.get("/a")).toBe(5);
    expect(cu.reset).toEqual(["/a"]);
    const first = await cu.next(Infinity);
    expect(first.messages).toEqual([]);
    expect(first.reset).toEqual(["/a"]);
    // Handed out once: a later page does not repeat it.
    expect((await cu.next(Infinity)).reset).toEqual([]);
    expect(cu.done).toBe(true);
    expect(cu.status()).toEqual({ "/a": 5, __reset: ["/a"] });
  });

  it("k on a channel never published to is beyond its end: reset, told 0", async () => {
    const cu = await open(new MemoryBackend(), { "/none": 3 });
    expect((await drain(cu)).reset).toEqual(["/none"]);
    expect(cu.status()).toEqual({ "/none": 0, __reset: ["/none"] });
  });
});

describe("epochs", () => {
  it("another epoch: the whole backlog of this one, the channel reset, the epoch told", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 3);
    const cu = await open(b, { "/a": 2 }, "not-" + b.epoch);
    expect(cu.epoch).toBe(b.epoch);
    expect(cu.tellEpoch).toBe(true);
    expect(cu.start.get("/a")).toBe(0);
    expect(await drain(cu)).toEqual({ ids: range("/a", 1, 3), globals: [1, 2, 3], reset: ["/a"] });
    expect(cu.status()).toEqual({ "/a": 3, __epoch: b.epoch, __reset: ["/a"] });
  });

  it("another epoch does not change -1 and -N: they promised nothing from before", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 3);
    await publish(b, "/b", 3);
    const cu = await open(b, { "/a": -1, "/b": -2 }, "old");
    expect((await drain(cu)).ids).toEqual(["/b#3"]);
    expect(cu.status()).toEqual({ "/a": 3, __epoch: b.epoch });
  });

  it('an empty epoch ("" = knows epochs, not this one yet) is told the epoch, with no reset', async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 3);
    const cu = await open(b, { "/a": 1 }, "");
    expect((await drain(cu)).ids).toEqual(["/a#2", "/a#3"]);
    expect(cu.status()).toEqual({ __epoch: b.epoch });
  });

  it("the same epoch, or none (message-bus-client), is not told it", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 3);
    for (const epoch of [b.epoch, undefined]) {
      const cu = await open(b, { "/a": 1 }, epoch);
      expect(cu.tellEpoch, String(epoch)).toBe(false);
      expect((await drain(cu)).ids).toEqual(["/a#2", "/a#3"]);
      expect(cu.status(), String(epoch)).toBeNull();
    }
  });
});

describe("trimmed gaps: reported, never hidden", () => {
  it("a position whose next message was trimmed: reset, then what is left", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 6, { keep: 3 });
    const cu = await open(b, { "/a": 1 });
    expect(await drain(cu)).toEqual({ ids: range("/a", 4, 6), globals: [4, 5, 6], reset: ["/a"] });
    expect(cu.status()).toEqual({ "/a": 6, __reset: ["/a"] });
  });

  it("a position right before what is left is no gap", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 6, { keep: 3 });
    const cu = await open(b, { "/a": 3 });
    expect(await drain(cu)).toEqual({ ids: range("/a", 4, 6), globals: [4, 5, 6], reset: [] });
    expect(cu.status()).toBeNull();
  });

  it("a gap trimmed while the client read the first page is found on the next page", async () => {
    const b = new MemoryBackend();
    const total = READ_PAGE + 44;
    await publish(b, "/a", total);
    const cu = await open(b, { "/a": 0 });
    // A one-byte budget: one message per answer, so the store can move between two of them.
    const ids: string[] = [];
    for (let i = 0; i < READ_PAGE; i++) {
      const page = await cu.next(1);
      expect(page.reset).toEqual([]);
      ids.push(...page.messages.map((o) => `/a#${o.message.message_id}`));
    }
    expect(ids).toEqual(range("/a", 1, READ_PAGE));
    expect(cu.done).toBe(false);
    // One more publish keeps only the newest 10: the second page's start (id READ_PAGE + 1) is gone.
    await publish(b, "/a", 1, { keep: 10 });
    const next = await cu.next(1);
    expect(next.reset).toEqual(["/a"]);
    expect(next.messages.map((o) => o.message.message_id)).toEqual([total - 8]);
    const rest = await drain(cu);
    expect(rest.ids).toEqual(range("/a", total - 7, total + 1));
    expect(rest.reset).toEqual([]);
    expect(cu.reset).toEqual(["/a"]);
    expect(cu.status()).toEqual({ "/a": total + 1, __reset: ["/a"] });
  });
});

describe("entries the identity may not see", () => {
  it("are skipped, and the position still passes them (told, so the client does not ask again)", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 1);
    await publish(b, "/a", 1, { user_ids: [7] });
    await publish(b, "/a", 1, { client_ids: ["other"] });
    await publish(b, "/a", 1, { user_ids: [8] });
    await publish(b, "/a", 1, { group_ids: [4] });
    await publish(b, "/a", 1, { site_id: "elsewhere" });
    const cu = await open(b, { "/a": 0 });
    expect((await drain(cu)).ids).toEqual(["/a#1", "/a#4"]);
    expect(cu.positions.get("/a")).toBe(6);
    expect(cu.status()).toEqual({ "/a": 6 });
  });

  it("a channel whose last entry was delivered has nothing to tell", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 1, { user_ids: [7] });
    await publish(b, "/a", 1, { group_ids: [3] });
    const cu = await open(b, { "/a": 0 });
    expect((await drain(cu)).ids).toEqual(["/a#2"]);
    expect(cu.status()).toBeNull();
  });

  it("are all there is for a server-side subscriber (`all`)", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 1, { user_ids: [7] });
    await publish(b, "/a", 1, { site_id: "x" });
    const cu = await open(b, { "/a": 0 }, undefined, { clientId: "server", all: true });
    expect((await drain(cu)).ids).toEqual(["/a#1", "/a#2"]);
    expect(cu.status()).toBeNull();
  });
});

describe("several channels", () => {
  it("are merged in global order, each from its own start", async () => {
    const b = new MemoryBackend();
    for (const ch of ["/a", "/b", "/a", "/c", "/b", "/a", "/c", "/b"]) await publish(b, ch, 1);
    // /a: 1,3,6  /b: 2,5,8  /c: 4,7 (global ids)
    const cu = await open(b, { "/a": 1, "/b": 0, "/c": -2 });
    const got = await drain(cu);
    expect(got.ids).toEqual(["/b#1", "/a#2", "/b#2", "/a#3", "/c#2", "/b#3"]);
    expect(got.globals).toEqual([2, 3, 5, 6, 7, 8]);
    expect(Object.fromEntries(cu.positions)).toEqual({ "/a": 3, "/b": 3, "/c": 2 });
    expect(cu.status()).toBeNull();
  });

  it("an answer cut short names where the -N channels stand, so the next poll goes on from there", async () => {
    const b = new MemoryBackend();
    await publish(b, "/b", 3);
    await publish(b, "/a", 5);
    await publish(b, "/c", 2);
    const cu = await open(b, { "/a": -3, "/b": 0, "/c": -1 });
    const first = await cu.next(1);
    expect(first.messages.map((o) => `${o.message.channel}#${o.message.message_id}`)).toEqual(["/b#1"]);
    expect(cu.done).toBe(false);
    // /a was asked at -3: only the status can tell the next poll it now stands at 3, not at -3.
    expect(cu.toldPositions()).toEqual({ "/a": 3, "/c": 2 });
    expect(cu.status()).toEqual({ "/a": 3, "/c": 2 });
    expect((await drain(cu)).ids).toEqual(["/b#2", "/b#3", "/a#4", "/a#5"]);
    expect(cu.done).toBe(true);
    // Answered in full: /a's last message says where it stands; /c was asked at -1 and is told.
    expect(cu.toldPositions()).toEqual({ "/c": 2 });
    expect(cu.status()).toEqual({ "/c": 2 });
  });

  it("toldPositions leaves the epoch and resets to status()", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 2);
    const cu = await open(b, { "/a": 7 }, "old");
    await drain(cu);
    expect(cu.toldPositions()).toEqual({ "/a": 2 });
    expect(cu.status()).toEqual({ "/a": 2, __epoch: b.epoch, __reset: ["/a"] });
  });
});

describe("gaps nothing is left of, and where a long stream's channels start", () => {
  it("every message after the position expired: reported as a reset, the channel stands at its last id", async () => {
    const b = new MemoryBackend();
    await publish(b, "/gone", 1);
    // Three that expire at once (a 1 ms age), so nothing after position 1 is left when the client comes.
    for (let i = 0; i < 3; i++) {
      await b.append({ channel: "/gone", data: i, dataJson: String(i), maxBacklogSize: 1000, maxBacklogAge: 0.001, maxGlobalBacklogSize: 1000 });
    }
    await new Promise((r) => setTimeout(r, 5));
    const cu = await open(b, { "/gone": 1 });
    expect(await drain(cu)).toEqual({ ids: [], globals: [], reset: ["/gone"] });
    expect(cu.status()).toEqual({ "/gone": 4, __reset: ["/gone"] });
  });

  it("the same for -N: nothing retained, nothing reset (the client named no ids), told the last id", async () => {
    const b = new MemoryBackend();
    for (let i = 0; i < 3; i++) await b.append({ channel: "/old", data: i, dataJson: String(i), maxBacklogSize: 1000, maxBacklogAge: 0.001, maxGlobalBacklogSize: 1000 });
    await new Promise((r) => setTimeout(r, 5));
    const cu = await open(b, { "/old": -3 });
    expect((await drain(cu)).reset).toEqual([]);
    expect(cu.status()).toEqual({ "/old": 3 });
  });

  it("startPositions names where -1 and -N channels start, for a stream's first page", async () => {
    const b = new MemoryBackend();
    await publish(b, "/a", 10);
    await publish(b, "/b", 10);
    const cu = await open(b, { "/a": -1, "/b": -4, "/c": 2 });
    // /c was asked at a position the client already knows: nothing to tell.
    expect(cu.startPositions()).toEqual({ "/a": 10, "/b": 7 });
  });
});
