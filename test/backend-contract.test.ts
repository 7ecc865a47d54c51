import { afterEach, describe, expect, it } from "vitest";
import type { AppendRequest, Backend, StoredMessage } from "../server/core/backend.js";
import { type Recorder, type Store, storeFactories } from "./helpers/backends.js";
import { storeKinds } from "./helpers/store-kinds.js";

/** The Backend contract (server/backend.ts), one suite for every backend. */
/**
 * The Redis Cluster runs the suite as a one-shard deployment: the suite's global ids are one sequence
 * across channels, which holds per shard only (test/backend-cluster.test.ts covers several shards).
 */
const kinds = await storeKinds(1);

function req(channel: string, data: unknown, extra: Partial<AppendRequest> = {}): AppendRequest {
  return {
    channel,
    data,
    dataJson: JSON.stringify(data),
    maxBacklogSize: 1000,
    maxBacklogAge: 3600,
    maxGlobalBacklogSize: 2000,
    ...extra,
  };
}

const ids = (ms: StoredMessage[]) => ms.map((m) => [m.channel, m.global_id, m.message_id]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(kinds)("%s backend", (kind) => {
  let store: Store;
  let b: Backend;
  let events: Recorder;

  async function fresh(): Promise<void> {
    store = storeFactories[kind]();
    ({ backend: b, events } = await store.open());
  }

  afterEach(async () => {
    await store?.dispose();
  });

  it("assigns contiguous per-channel ids and increasing global ids, and delivers each message once in order", async () => {
    await fresh();
    const out = [];
    for (const [ch, n] of [["/a", 1], ["/b", 2], ["/a", 3], ["/a", 4], ["/b", 5]] as const) out.push(await b.append(req(ch, n)));
    expect(ids(out)).toEqual([
      ["/a", 1, 1],
      ["/b", 2, 1],
      ["/a", 3, 2],
      ["/a", 4, 3],
      ["/b", 5, 2],
    ]);
    await events.count(5);
    await sleep(50);
    expect(ids(events.messages)).toEqual(ids(out));
    expect(events.messages.map((m) => m.data)).toEqual([1, 2, 3, 4, 5]);
    expect(b.epoch).toMatch(/^[0-9a-z]+$/);
    expect(events.epochs).toEqual([]);
  });

  it("carries message_bus channels exactly: any UTF-8 after the slash (keys, rows, feed, snapshot)", async () => {
    await fresh();
    // Spaces, scripts, emoji, the characters Redis keys, globs, SQL and JSON care about, and 256 bytes.
    const names = ["/café bar", "/日本語/チャット", "/emoji😀", "/glob*?[x]", "/quote'\"\\", "/a|b\u00a0c", "/" + "é".repeat(127) + "x"];
    for (const ch of names) await b.append(req(ch, { ch }));
    for (const ch of names) {
      const backlog = await b.backlog(ch, 0);
      expect(backlog.map((m) => [m.channel, m.message_id, m.data])).toEqual([[ch, 1, { ch }]]);
    }
    // A name that differs in one code point is another channel.
    expect(await b.backlog("/cafe bar", 0)).toEqual([]);
    const snap = await b.snapshot(names);
    expect([...snap.lastIds.values()]).toEqual(names.map(() => 1));
    await events.count(names.length);
    expect(events.messages.map((m) => m.channel)).toEqual(names);
    expect((await b.globalBacklog(0)).map((m) => m.channel)).toEqual(names);
  });

  it("reads a backlog a page at a time: at most `limit` messages after the position", async () => {
    await fresh();
    for (let i = 1; i <= 7; i++) await b.append(req("/pg", i));
    expect((await b.backlog("/pg", 0, 3)).map((m) => m.message_id)).toEqual([1, 2, 3]);
    expect((await b.backlog("/pg", 3, 3)).map((m) => m.message_id)).toEqual([4, 5, 6]);
    expect((await b.backlog("/pg", 6, 3)).map((m) => m.message_id)).toEqual([7]);
    expect((await b.backlog("/pg", 0)).map((m) => m.message_id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it("reads backlogs after a position, and snapshots epoch, global id and last ids together", async () => {
    await fresh();
    for (let i = 1; i <= 3; i++) await b.append(req("/a", { i }));
    await b.append(req("/b", "x"));
    expect((await b.backlog("/a", 0)).map((m) => m.data)).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }]);
    expect((await b.backlog("/a", 2)).map((m) => [m.message_id, m.data])).toEqual([[3, { i: 3 }]]);
    expect(await b.backlog("/a", 3)).toEqual([]);
    expect(await b.backlog("/a", 99)).toEqual([]);
    expect(await b.backlog("/never", 0)).toEqual([]);
    expect(ids(await b.globalBacklog(0))).toEqual([
      ["/a", 1, 1],
      ["/a", 2, 2],
      ["/a", 3, 3],
      ["/b", 4, 1],
    ]);
    expect(ids(await b.globalBacklog(3))).toEqual([["/b", 4, 1]]);
    expect(await b.globalBacklog(4)).toEqual([]);
    const snap = await b.snapshot(["/a", "/b", "/never"]);
    expect(snap).toEqual({ epoch: b.epoch, globalId: 4, lastIds: new Map([["/a", 3], ["/b", 1], ["/never", 0]]) });
    expect(await b.snapshot([])).toEqual({ epoch: b.epoch, globalId: 4, lastIds: new Map() });
  });

  it("trims a channel's backlog by size as a prefix; ids go on and last ids stay", async () => {
    await fresh();
    for (let i = 1; i <= 5; i++) await b.append(req("/t", i, { maxBacklogSize: 3 }));
    expect((await b.backlog("/t", 0)).map((m) => m.message_id)).toEqual([3, 4, 5]);
    expect((await b.backlog("/t", 1)).map((m) => m.message_id)).toEqual([3, 4, 5]);
    expect((await b.backlog("/t", 4)).map((m) => m.message_id)).toEqual([5]);
    expect((await b.snapshot(["/t"])).lastIds.get("/t")).toBe(5);
    expect((await b.append(req("/t", 6, { maxBacklogSize: 3 }))).message_id).toBe(6);
    expect((await b.backlog("/t", 0)).map((m) => m.data)).toEqual([4, 5, 6]);
  });

  it("trims the global backlog to its size", async () => {
    await fresh();
    for (let i = 1; i <= 6; i++) await b.append(req(i % 2 ? "/odd" : "/even", i, { maxGlobalBacklogSize: 4 }));
    expect((await b.globalBacklog(0)).map((m) => m.global_id)).toEqual([3, 4, 5, 6]);
    // Channel backlogs keep their own size.
    expect((await b.backlog("/odd", 0)).map((m) => m.data)).toEqual([1, 3, 5]);
  });

  it("expires by age: an expired message takes older ones with it, ids never restart", async () => {
    await fresh();
    await b.append(req("/age", "long-1", { maxBacklogAge: 3600 }));
    await b.append(req("/age", "short-2", { maxBacklogAge: 0.3 }));
    await b.append(req("/age2", "short", { maxBacklogAge: 0.3 }));
    expect((await b.backlog("/age", 0)).map((m) => m.data)).toEqual(["long-1", "short-2"]);
    await sleep(700);
    expect(await b.backlog("/age", 0)).toEqual([]);
    expect(await b.backlog("/age2", 0)).toEqual([]);
    expect((await b.snapshot(["/age", "/age2"])).lastIds).toEqual(new Map([["/age", 2], ["/age2", 1]]));
    const m = await b.append(req("/age", "long-3", { maxBacklogAge: 3600 }));
    expect([m.message_id, m.global_id]).toEqual([3, 4]);
    expect((await b.backlog("/age", 0)).map((x) => [x.message_id, x.data])).toEqual([[3, "long-3"]]);
  });

  it("round-trips targeting metadata and the publisher's JSON text", async () => {
    await fresh();
    const targets = { user_ids: [7, "u8"], group_ids: [2], client_ids: ["c-1"], site_id: "site" };
    const data = { text: "héllo ✓ \u2028", n: [1, 2.5, null], nested: { deep: true } };
    const dataJson = '{ "text": "h\\u00e9llo ✓ \\u2028", "n": [1, 2.5, null], "nested": {"deep": true} }';
    const a = await b.append({ ...req("/x", data), dataJson, ...targets });
    const plain = await b.append(req("/x", "plain"));
    const expected = { global_id: 1, message_id: 1, channel: "/x", data, ...targets };
    const expectedPlain = { global_id: 2, message_id: 2, channel: "/x", data: "plain" };
    await events.count(2);
    const seen = [a, events.messages[0], (await b.backlog("/x", 0))[0], (await b.globalBacklog(0))[0]];
    for (const m of seen) {
      expect(m).toEqual(expected);
      expect(Object.keys(m).sort()).toEqual(Object.keys(expected).sort());
      expect(m.dataJson).toBe(dataJson);
    }
    for (const m of [plain, events.messages[1], (await b.backlog("/x", 1))[0], (await b.globalBacklog(1))[0]]) {
      expect(m).toEqual(expectedPlain);
      expect(Object.keys(m).sort()).toEqual(["channel", "data", "global_id", "message_id"]);
      expect(m.dataJson).toBe('"plain"');
    }
  });

  it("carries messages of 256 KiB", async () => {
    await fresh();
    const big = "x".repeat(256 * 1024 - 20) + "é\n\"|end";
    const m = await b.append(req("/big", { big }));
    await events.count(1);
    for (const x of [m, events.messages[0], (await b.backlog("/big", 0))[0], (await b.globalBacklog(0))[0]]) {
      expect((x.data as { big: string }).big).toBe(big);
      expect(x.dataJson).toBe(JSON.stringify({ big }));
    }
  });

  it("starts a new epoch on reset, everywhere: ids restart and every process is told", async () => {
    await fresh();
    const peer = await store.open();
    await b.append(req("/r", 1));
    await b.append(req("/r", 2));
    // A reset forgets what is not delivered yet; this test is about what follows it.
    await events.count(2);
    await peer.events.count(2);
    const before = b.epoch;
    await b.reset();
    expect(b.epoch).not.toBe(before);
    expect(events.epochs).toEqual([b.epoch]);
    await peer.events.until(() => peer.events.epochs.length === 1, "the peer's epoch event");
    expect(peer.events.epochs).toEqual([b.epoch]);
    expect(peer.backend.epoch).toBe(b.epoch);
    expect(await b.backlog("/r", 0)).toEqual([]);
    expect(await b.globalBacklog(0)).toEqual([]);
    expect(await b.snapshot(["/r"])).toEqual({ epoch: b.epoch, globalId: 0, lastIds: new Map([["/r", 0]]) });
    const m = await peer.backend.append(req("/r", 3));
    expect([m.global_id, m.message_id]).toEqual([1, 1]);
    await events.count(3);
    await peer.events.count(3);
    expect(events.messages.map((x) => [x.global_id, x.data])).toEqual([[1, 1], [2, 2], [1, 3]]);
    expect(peer.events.messages.map((x) => [x.global_id, x.data])).toEqual([[1, 1], [2, 2], [1, 3]]);
  });

  it("keeps ids contiguous under concurrent publishers on two instances, and both see the same order", async () => {
    await fresh();
    const peer = await store.open();
    const channels = ["/c0", "/c1", "/c2"];
    const n = 150;
    const publish = (be: Backend, who: string) =>
      Promise.all(Array.from({ length: n }, (_, i) => be.append(req(channels[i % 3], `${who}${i}`))));
    const [mine, theirs] = await Promise.all([publish(b, "a"), publish(peer.backend, "b")]);
    const all = [...mine, ...theirs];
    expect(all.map((m) => m.global_id).sort((x, y) => x - y)).toEqual(Array.from({ length: 2 * n }, (_, i) => i + 1));
    for (const ch of channels) {
      const got = all.filter((m) => m.channel === ch).map((m) => m.message_id).sort((x, y) => x - y);
      expect(got).toEqual(Array.from({ length: (2 * n) / 3 }, (_, i) => i + 1));
    }
    await events.count(2 * n);
    await peer.events.count(2 * n);
    await sleep(50);
    const order = events.messages.map((m) => `${m.global_id}:${m.channel}:${m.message_id}:${m.data}`);
    expect(order).toHaveLength(2 * n);
    expect(events.messages.map((m) => m.global_id)).toEqual(Array.from({ length: 2 * n }, (_, i) => i + 1));
    expect(peer.events.messages.map((m) => `${m.global_id}:${m.channel}:${m.message_id}:${m.data}`)).toEqual(order);
    const byId = new Map(all.map((m) => [m.global_id, `${m.global_id}:${m.channel}:${m.message_id}:${m.data}`]));
    expect(order).toEqual(events.messages.map((m) => byId.get(m.global_id)));
  });

  it("never shows a later global id before an earlier one, even while many publish at once", async () => {
    await fresh();
    const peer = await store.open();
    let publishing = true;
    const publishers = Promise.all(
      [b, peer.backend].flatMap((be) => Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 25; i++) await be.append(req(`/v${(w + i) % 5}`, i));
      })),
    ).finally(() => (publishing = false));
    const seen: number[][] = [];
    while (publishing) seen.push((await b.globalBacklog(0)).map((m) => m.global_id));
    await publishers;
    seen.push((await b.globalBacklog(0)).map((m) => m.global_id));
    for (const ids of seen) expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1));
    expect(seen[seen.length - 1]).toHaveLength(200);
  });

  it("delivers to a process started later only what is published after it started", async () => {
    await fresh();
    await b.append(req("/late", "before"));
    const peer = await store.open();
    await b.append(req("/late", "after"));
    await peer.events.count(1);
    await events.count(2);
    await sleep(50);
    expect(peer.events.messages.map((m) => m.data)).toEqual(["after"]);
  });
});
