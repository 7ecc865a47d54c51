/**
 * `__clients` (docs/protocol.md#14-shared-connections): one connection speaking for several client
 * ids. Good lists widen client-id targeting to them and name each such message's addressees; bad
 * ones (fast-check) are refused like bad client ids, on HTTP and WebSocket, and parse nothing.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProtocolError } from "../src/errors.js";
import { DEFAULT_LIMITS } from "../src/limits.js";
import { parseSubscription } from "../src/subscription.js";
import { parse, poll, WsClient, wsUrl } from "./fixtures/clients.js";
import { CLIENT_ID, FUZZ_SEED, fuzzRuns } from "./helpers/fuzz-arbitraries.js";
import { startServer, type TestServer } from "./helpers/server.js";

const MAX = DEFAULT_LIMITS.maxSharedClients;

const goodId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
/** Pieces that are often client ids and often not: empty, too long, other characters, commas' neighbours. */
const piece = fc.oneof(goodId, fc.string({ maxLength: 70 }), fc.constantFrom("", " ", "a b", "x".repeat(65), "é", "a;b", "%41"));
const list = fc.array(piece, { maxLength: MAX + 4 }).map((ids) => ids.join(","));

/** The rule, said plainly: "" is none; otherwise each comma-separated piece a client id, at most MAX. */
function oracle(v: string): boolean {
  if (v === "") return true;
  const ids = v.split(",");
  return ids.length <= MAX && ids.every((id) => CLIENT_ID.test(id));
}

describe("__clients parsing", () => {
  it("takes exactly the lists the rule allows, and refuses the rest with a ProtocolError", () => {
    fc.assert(
      fc.property(list, (v) => {
        let sub;
        try {
          sub = parseSubscription({ "/c": 1, __clients: v });
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          expect((e as Error).message).toMatch(/^(bad|too many) __clients/);
          expect(oracle(v)).toBe(false);
          return;
        }
        expect(oracle(v)).toBe(true);
        expect(sub.clients!.every((id) => CLIENT_ID.test(id))).toBe(true);
        expect(sub.clients!.length).toBeLessThanOrEqual(MAX);
      }),
      { seed: FUZZ_SEED, numRuns: fuzzRuns(500) },
    );
  });

  it("refuses anything but a string", () => {
    fc.assert(
      fc.property(
        fc.anything().filter((v) => typeof v !== "string"),
        (v) => {
          expect(() => parseSubscription({ __clients: v })).toThrow(ProtocolError);
        },
      ),
      { seed: FUZZ_SEED, numRuns: fuzzRuns(200) },
    );
  });

  it("is counted against limits.maxSharedClients", () => {
    const ids = Array.from({ length: 5 }, (_, i) => "t" + i).join(",");
    expect(() => parseSubscription({ __clients: ids }, { limits: { ...DEFAULT_LIMITS, maxSharedClients: 4 } })).toThrow(/too many __clients: at most 4/);
    expect(parseSubscription({ __clients: ids }, { limits: { ...DEFAULT_LIMITS, maxSharedClients: 5 } }).clients).toHaveLength(5);
  });
});

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ longPollTimeout: 1000 });
});
afterAll(async () => {
  await server?.close();
});

describe("a connection speaking for several client ids", () => {
  it("poll: gets the messages aimed at any of them, each naming its addressees; others' not; nothing else tagged", async () => {
    const ch = "/shared/poll";
    await server.bus.publish(ch, "all");
    await server.bus.publish(ch, "for b", { clientIds: ["b"] });
    await server.bus.publish(ch, "for a and z", { clientIds: ["a", "z"] });
    await server.bus.publish(ch, "for z", { clientIds: ["z"] });
    await server.bus.publish(ch, "for u7", { userIds: [7] });
    const shared = parse((await poll(server.base, "a", { [ch]: 0 }, { json: true, extra: { __clients: "b,c" } })).text);
    expect(shared.filter((m) => m.channel === ch).map((m) => [m.data, (m as { client_ids?: string[] }).client_ids])).toEqual([
      ["all", undefined],
      ["for b", ["b"]],
      ["for a and z", ["a"]],
    ]);
    // message-bus-client's view, without __clients: the envelope as ever, never a client_ids key.
    const alone = parse((await poll(server.base, "a", { [ch]: 0 })).text);
    expect(alone.filter((m) => m.channel === ch).map((m) => m.data)).toEqual(["all", "for a and z"]);
    expect(alone.some((m) => "client_ids" in m)).toBe(false);
  });

  it("WebSocket: a later subscribe frame changes the ids it speaks for, live", async () => {
    const ch = "/shared/ws";
    const ws = new WsClient(wsUrl(server.base, "a"));
    try {
      await ws.until(() => ws.frames.length >= 1, "welcome");
      ws.send({ subscribe: { [ch]: -1, __clients: "b" } });
      await ws.until(() => ws.frames.length >= 2, "the subscribe's answer");
      await server.bus.publish(ch, "for b", { clientIds: ["b"] });
      await server.bus.publish(ch, "for c", { clientIds: ["c"] });
      ws.send({ subscribe: { __clients: "b,c" } });
      await ws.until(() => ws.frames.length >= 4, "the second subscribe's answer");
      await server.bus.publish(ch, "for c again", { clientIds: ["c"] });
      await server.bus.publish(ch, "end");
      await ws.until(() => ws.messages().some((m) => m.data === "end"), "end");
      const got = ws.messages().filter((m) => m.channel === ch);
      expect(got.map((m) => [m.data, (m as { client_ids?: string[] }).client_ids])).toEqual([
        ["for b", ["b"]],
        ["for c again", ["c"]],
        ["end", undefined],
      ]);
    } finally {
      ws.close();
    }
  });

  it("bad __clients: HTTP 400 with a JSON error, WebSocket close 1008; the server carries on", async () => {
    const bad = list.filter((v) => !oracle(v));
    await fc.assert(
      fc.asyncProperty(bad, async (v) => {
        const res = await poll(server.base, "a", { "/c": 0 }, { json: true, extra: { __clients: v } });
        expect(res.status).toBe(400);
        expect(JSON.parse(res.text).error).toMatch(/__clients/);
      }),
      { seed: FUZZ_SEED, numRuns: fuzzRuns(40) },
    );
    const ws = new WsClient(wsUrl(server.base, "a"));
    try {
      await ws.until(() => ws.frames.length >= 1, "welcome");
      ws.send({ subscribe: { "/c": 0, __clients: "ok,not ok" } });
      expect((await ws.whenClosed()).code).toBe(1008);
    } finally {
      ws.close();
    }
    expect((await poll(server.base, "a", { "/c": 0 })).status).toBe(200);
  });
});
