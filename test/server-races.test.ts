import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { chunkedPoll, longPoll, parse, sse, WsClient, wsUrl } from "./fixtures/clients.js";
import { follow, TRANSPORTS } from "./fixtures/follow.js";
import { RacingBackend } from "./fixtures/racing-backend.js";
import { heldPoll, startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

/**
 * What a slow backend round trip lets happen in the middle of a catch-up: a reset, a newer
 * long-poll from the same client, a shutdown. None may crash, lose or double a message.
 */
let server: TestServer | undefined;
let backend: RacingBackend;
const errors: unknown[] = [];
afterEach(async () => {
  await server?.close();
  server = undefined;
  errors.length = 0;
});

async function start(longPollTimeout = 5000): Promise<TestServer> {
  backend = new RacingBackend();
  server = await startServer({ backend, longPollTimeout, onError: (e) => errors.push(e) });
  return server;
}

describe.each(TRANSPORTS)("bus.reset() during a %s catch-up", (transport) => {
  it("is reported (__reset, new epoch) and what follows arrives from id 1", async () => {
    const s = await start();
    await s.bus.publish("/r", "old-1");
    await s.bus.publish("/r", "old-2");
    const oldEpoch = s.bus.backend.epoch;
    let resetDone!: Promise<void>;
    backend.at = "snapshot";
    backend.race = async () => {
      resetDone = s.bus.reset();
      await resetDone;
    };
    let sentAfter = false;
    const f = await follow(transport, s.base, `reset-${transport}`, { "/r": 1 }, (x) => {
      if (!sentAfter && x.statuses.some((st) => Array.isArray(st.__reset))) {
        sentAfter = true;
        void s.bus.publish("/r", "after");
      }
      return x.messages.some((m) => m.data === "after");
    });
    await resetDone;
    expect(s.bus.backend.epoch).not.toBe(oldEpoch);
    const reset = f.statuses.find((st) => Array.isArray(st.__reset))!;
    expect(reset).toMatchObject({ __reset: ["/r"], "/r": 0 });
    // Old-epoch messages may precede the reset; after it, exactly the new epoch's message 1.
    const afterReset = f.messages.slice(f.messages.findIndex((m) => m.data === "after"));
    expect(afterReset.map((m) => [m.message_id, m.data])).toEqual([[1, "after"]]);
    expect(f.messages.filter((m) => m.data === "old-2").length).toBeLessThanOrEqual(1);
    expect(errors).toEqual([]);
  });
});

describe("a newer long-poll from the same client while the older reads its backlog", () => {
  it.each(["long-poll", "chunked"] as const)("%s: the older answers [], the newer is held and served", async (kind) => {
    const s = await start();
    await s.bus.publish("/q", "m1");
    backend.at = "backlog";
    let newer!: Promise<{ status: number; text: string }>;
    backend.race = async () => {
      newer = longPoll(s.base, "same", { "/q": 1 }, { extra: { __seq: 2 } });
      await waitFor(() => heldPoll(s.bus, "same")?.seq === 2, "the newer poll registered");
    };
    let older: string;
    if (kind === "long-poll") {
      older = (await longPoll(s.base, "same", { "/q": 0 }, { extra: { __seq: 1 } })).text;
    } else {
      const chunks: Message[][] = [];
      const r = await chunkedPoll(s.base, "same", { "/q": 0 }, (c) => void chunks.push(c), { extra: { __seq: 1 } });
      expect(r.status).toBe(200);
      older = JSON.stringify(chunks.flat());
    }
    expect(older).toBe("[]");
    await waitFor(() => s.bus.stats().subscribers["long-poll"] === 1, "the newer poll held");
    await s.bus.publish("/q", "m2");
    const a = await newer;
    expect(a.status).toBe(200);
    expect(parse(a.text)).toEqual([expect.objectContaining({ message_id: 2, data: "m2" })]);
    expect(errors).toEqual([]);
  });
});

describe("bus.close() while a catch-up is under way", () => {
  it.each(["long-poll", "chunked", "sse"] as const)("%s: close resolves and the client gets a clean end", async (kind) => {
    const s = await start();
    await s.bus.publish("/c", "m1");
    backend.at = "backlog";
    let closing!: Promise<void>;
    backend.race = async () => {
      closing = s.close();
      server = undefined;
      await new Promise((r) => setTimeout(r, 20));
    };
    if (kind === "long-poll") {
      const a = await longPoll(s.base, "closing", { "/c": 0 });
      expect(a.status).toBe(200);
      expect(parse(a.text).filter((m) => m.channel !== "/__status").length).toBeLessThanOrEqual(1);
    } else if (kind === "chunked") {
      const r = await chunkedPoll(s.base, "closing", { "/c": 0 }, () => {});
      expect(r.status).toBe(200);
    } else {
      const r = await sse(`${s.base}/closing/sse?/c=0`, () => {});
      expect(r.status).toBe(200);
      expect(r.ended).toBe("server");
    }
    await expect(closing).resolves.toBeUndefined();
    expect(errors).toEqual([]);
  });
});

describe("heartbeats while a catch-up is under way", () => {
  it("an SSE stream whose backlog is still being read is passed over, not written to", async () => {
    backend = new RacingBackend();
    server = await startServer({ backend, heartbeatInterval: 5, onError: (e) => errors.push(e) });
    const s = server;
    await s.bus.publish("/h", "m1");
    backend.race = () => new Promise((r) => setTimeout(r, 60)); // several heartbeat ticks
    const comments: string[] = [];
    const events: string[] = [];
    const r = await sse(`${s.base}/hb/sse?/h=0`, (e) => void events.push(e.data), {
      onComment: (c) => {
        comments.push(c);
        return undefined;
      },
      signal: AbortSignal.timeout(300),
    }).catch((e) => e);
    expect(events.map((d) => JSON.parse(d).channel)).toEqual(["/__status", "/h"]);
    expect(comments[0]).toBe("cometbus");
    expect(comments.slice(1).every((c) => c === "hb")).toBe(true);
    expect(r).not.toBeInstanceOf(Error);
    expect(errors).toEqual([]);
  });
});

describe("a reset while a WebSocket adds a channel", () => {
  it("the channel already live is reset too, and both get the new epoch's messages from id 1", async () => {
    const s = await start();
    await s.bus.publish("/live", "old-live-1");
    await s.bus.publish("/added", "old-added-1");
    const oldEpoch = s.bus.backend.epoch;
    const ws = new WsClient(wsUrl(s.base, "adder"));
    try {
      await ws.opened;
      ws.send({ subscribe: { "/live": 1 } });
      await ws.until(() => ws.frames.length >= 2);
      backend.at = "snapshot";
      backend.race = async () => {
        await s.bus.reset();
        await s.bus.publish("/live", "new-live-1");
        await s.bus.publish("/added", "new-added-1");
      };
      // Positions carry their epoch (as cometbus clients send it): a bare 1 would be taken for the
      // new epoch's message 1, message_bus's ambiguity.
      ws.send({ subscribe: { "/added": 1, __epoch: oldEpoch } });
      await ws.until(() => ["new-live-1", "new-added-1"].every((d) => ws.messages().some((m) => m.data === d)));
      await s.bus.publish("/live", "new-live-2");
      await ws.until(() => ws.messages().some((m) => m.data === "new-live-2"));
      // Order is per channel (the added channel's catch-up may come before the live one's replay).
      const of = (ch: string) => ws.messages().filter((m) => m.channel === ch).map((m) => [m.message_id, m.data]);
      expect(of("/live")).toEqual([
        [1, "new-live-1"],
        [2, "new-live-2"],
      ]);
      expect(of("/added")).toEqual([[1, "new-added-1"]]);
      const resets = ws.messages().filter((m) => m.channel === "/__status" && Array.isArray((m.data as { __reset?: unknown }).__reset));
      expect(resets.some((m) => (m.data as { __reset: string[] }).__reset.includes("/live"))).toBe(true);
      expect(errors).toEqual([]);
    } finally {
      ws.close();
    }
  });
});
