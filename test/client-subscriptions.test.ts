/** The batch rule every transport's batches go through (client/subscriptions.ts), case by case. */
import { describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { Subscriptions } from "../client/subscriptions.js";

const msg = (channel: string, id: number, g = id): Message => ({ global_id: g, message_id: id, channel, data: `${channel}#${id}` });
const status = (data: Record<string, unknown>): Message => ({ global_id: -1, message_id: -1, channel: "/__status", data });
const noop = () => {};

function subs(positions: Record<string, number>, epoch = ""): Subscriptions {
  const s = new Subscriptions();
  for (const [ch, p] of Object.entries(positions)) s.add(ch, noop, p);
  s.epoch = epoch;
  return s;
}

const ids = (due: Message[]) => due.map((m) => `${m.channel}#${m.message_id}`);

describe("the batch rule", () => {
  it("delivers what is past each position, drops replays and unknown channels, advances positions", () => {
    const s = subs({ "/a": 2, "/b": 0 });
    const due = s.take([msg("/a", 1), msg("/a", 3), msg("/b", 1), msg("/a", 3), msg("/c", 9), msg("/a", 2), msg("/a", 4)], "", noop);
    expect(ids(due)).toEqual(["/a#3", "/b#1", "/a#4"]);
    expect(Object.fromEntries(s.positions)).toEqual({ "/a": 4, "/b": 1 });
  });

  it("a status moves positions forward only, after the batch's messages, and names the epoch", () => {
    const s = subs({ "/a": -1, "/b": 5 });
    const due = s.take([msg("/b", 6), status({ "/a": 10, "/b": 3, __epoch: "E1" })], "", noop);
    expect(ids(due)).toEqual(["/b#6"]);
    expect(Object.fromEntries(s.positions)).toEqual({ "/a": 10, "/b": 6 });
    expect(s.epoch).toBe("E1");
    expect(s.body()).toEqual({ "/a": 10, "/b": 6, __epoch: "E1" });
  });

  it("a reset comes before the messages: onReset once, position 0, then the new ids from 1", () => {
    const s = subs({ "/a": 7, "/b": 3 }, "E1");
    const resets: string[] = [];
    const due = s.take([msg("/a", 1), msg("/a", 2), status({ "/a": 2, "/b": 3, __epoch: "E2", __reset: ["/a"] })], "E1", (ch) => resets.push(ch));
    expect(resets).toEqual(["/a"]);
    expect(ids(due)).toEqual(["/a#1", "/a#2"]);
    expect(Object.fromEntries(s.positions)).toEqual({ "/a": 2, "/b": 3 });
    expect(s.epoch).toBe("E2");
  });

  it("a reset sets the named position even when it is lower (a trimmed channel starts where the server says)", () => {
    const s = subs({ "/a": 50 }, "E1");
    const resets: string[] = [];
    // An SSE head on the same epoch: the asked position was beyond the channel's end.
    s.take([status({ "/a": 12, __epoch: "E1", __reset: ["/a"] })], "E1", (ch) => resets.push(ch));
    expect(resets).toEqual(["/a"]);
    expect(s.positions.get("/a")).toBe(12);
  });

  it("a connection opened before the new epoch was learnt cannot rewind positions a second time", () => {
    const s = subs({ "/a": 7 }, "E1");
    const resets: string[] = [];
    // The WebSocket brings the new epoch first...
    s.take([status({ "/a": 0, __epoch: "E2", __reset: ["/a"] }), msg("/a", 1), msg("/a", 2)], "E1", (ch) => resets.push(ch));
    // ...then an overlapping long-poll that asked with E1 says the same: stale, its messages are replays.
    const due = s.take([msg("/a", 1), msg("/a", 2), status({ "/a": 2, __epoch: "E2", __reset: ["/a"] })], "E1", (ch) => resets.push(ch));
    expect(resets).toEqual(["/a"]);
    expect(ids(due)).toEqual([]);
    expect(s.positions.get("/a")).toBe(2);
  });
});

describe("callbacks", () => {
  it("unsubscribe: a trailing * is a prefix, a function narrows to one callback, positions go with the last callback", () => {
    const s = new Subscriptions();
    const f1 = () => {};
    const f2 = () => {};
    s.add("/chat/1", f1, 5);
    s.add("/chat/1", f2, 9); // joins where the channel stands
    s.add("/chat/2", f1, -1);
    s.add("/news", f1, 0);
    expect(s.positions.get("/chat/1")).toBe(5);
    expect(s.remove("/chat/1", f1)).toBe(true);
    expect(s.channels()).toEqual(["/chat/1", "/chat/2", "/news"]);
    expect(s.remove("/chat/*")).toBe(true);
    expect(s.channels()).toEqual(["/news"]);
    expect(s.remove("/chat/*")).toBe(false);
    expect(s.callbacks.map((c) => c.channel)).toEqual(["/news"]);
  });
});
