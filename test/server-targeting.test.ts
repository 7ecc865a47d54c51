import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, poll } from "./fixtures/clients.js";
import { follow, TRANSPORTS, type Followed } from "./fixtures/follow.js";
import { startServer, type TestServer } from "./helpers/server.js";

/** Who a request is comes from headers, as an app's session lookup would. */
async function targetingServer(): Promise<TestServer> {
  return startServer({
    longPollTimeout: 2000,
    userIdLookup: (c) => c.req.header("x-user") ?? null,
    groupIdsLookup: (c) => (c.req.header("x-groups") ? c.req.header("x-groups")!.split(",").map(Number) : null),
  });
}

/** The channel's messages: who may see each is in its name. */
async function publishTargeted(s: TestServer, ch: string, withEnd: boolean): Promise<void> {
  await s.bus.publish(ch, "public-1");
  await s.bus.publish(ch, "user-7", { userIds: [7] });
  await s.bus.publish(ch, "group-3", { groupIds: [3] });
  await s.bus.publish(ch, "client-x", { clientIds: ["client-x"] });
  await s.bus.publish(ch, "public-2");
  await s.bus.publish(ch, "user-7-last", { userIds: ["7"] });
  if (withEnd) await s.bus.publish(ch, "end");
}

const WHO = {
  user7: { headers: { "x-user": "7" }, clientId: "u7", sees: ["public-1", "user-7", "public-2", "user-7-last"] },
  user8inGroup3: { headers: { "x-user": "8", "x-groups": "3,4" }, clientId: "u8g3", sees: ["public-1", "group-3", "public-2"] },
  user8: { headers: { "x-user": "8" }, clientId: "u8", sees: ["public-1", "public-2"] },
  user8asClientX: { headers: { "x-user": "8" }, clientId: "client-x", sees: ["public-1", "client-x", "public-2"] },
  anonymous: { headers: {}, clientId: "anon", sees: ["public-1", "public-2"] },
} as const;

/** Unique per transport, except the one whose client id is what a message targets. */
const clientIdOf = (who: { clientId: string }, transport: string) =>
  who.clientId === "client-x" ? "client-x" : `${who.clientId}-${transport}`;

let server: TestServer;
beforeAll(async () => {
  server = await targetingServer();
});
afterAll(async () => {
  await server?.close();
});

describe.each(TRANSPORTS)("targeting over %s", (transport) => {
  it("live: each subscriber gets exactly what it may see, nothing else", async () => {
    const ch = `/live/${transport}`;
    const runs = Object.entries(WHO).map(([name, who]) => {
      let subscribed!: () => void;
      const ready = new Promise<void>((r) => (subscribed = r));
      const until = (f: Followed) => f.messages.some((m) => m.data === "end");
      const done = follow(transport, server.base, clientIdOf(who, transport), { [ch]: -1 }, until, {
        headers: who.headers,
        onSubscribed: subscribed,
      });
      done.catch(() => subscribed());
      return { name, who, ready, done };
    });
    await Promise.all(runs.map((r) => r.ready));
    await publishTargeted(server, ch, true);
    for (const r of runs) {
      const f = await r.done;
      expect({ who: r.name, got: f.messages.map((m) => m.data) }).toEqual({ who: r.name, got: [...r.who.sees, "end"] });
      expect(f.positions[ch]).toBe(7);
    }
  });

  it("backlog: filtered entries are passed over and the position still advances via /__status", async () => {
    const ch = `/backlog/${transport}`;
    await publishTargeted(server, ch, false);
    for (const [name, who] of Object.entries(WHO)) {
      const f = await follow(transport, server.base, clientIdOf(who, transport), { [ch]: 0 }, (x) => x.positions[ch] === 6, { headers: who.headers });
      expect({ who: name, got: f.messages.map((m) => m.data) }).toEqual({ who: name, got: who.sees });
      if (name !== "user7") {
        // The last entry was not theirs: only a status can have moved them to 6.
        expect(f.statuses.some((s) => s[ch] === 6)).toBe(true);
      }
    }
  });
});

describe("targeted positions through /__status", () => {
  it("user 8 polling from before a message for user 7 is told the new position, not the message", async () => {
    const ch = "/status-only";
    await server.bus.publish(ch, "public");
    await server.bus.publish(ch, "secret", { userIds: [7] });
    const a = await poll(server.base, "u8-status", { [ch]: 1 }, { headers: { "x-user": "8" } });
    expect(a.text).toBe(`[{"global_id":-1,"message_id":-1,"channel":"/__status","data":{"${ch}":2}}]`);
    const b = await poll(server.base, "u7-status", { [ch]: 1 }, { headers: { "x-user": "7" } });
    expect(parse(b.text)).toEqual([expect.objectContaining({ channel: ch, message_id: 2, data: "secret" })]);
  });
});
