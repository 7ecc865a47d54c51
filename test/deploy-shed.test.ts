/**
 * Load shedding (README: Deploying behind a load balancer; docs/protocol.md#75-moving-spreading-and-shedding): a process over its
 * connection limit, or whose event loop lags, refuses new connections with 503 + Retry-After (a
 * WebSocket: close 1013 with the wait in its reason), keeps serving those it holds, and the real
 * client comes back after the wait, with jitter, and receives everything.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MessageBus as ClientBus } from "../client/bus.js";
import type { TransportName } from "../client/types.js";
import { longPoll, parse, poll, sse, WsClient, wsUrl } from "./fixtures/clients.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { pause, waitFor } from "./helpers/wait.js";

let server: TestServer | undefined;
const clients: ClientBus[] = [];
const sockets: WsClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.stop();
  for (const w of sockets.splice(0)) w.close();
  await server?.close();
  server = undefined;
});

const subscribers = () => server!.bus.stats().subscribers;
const connections = () => Object.entries(subscribers()).reduce((n, [k, v]) => (k === "server" ? n : n + v), 0);

describe("over maxConnections", () => {
  it("refuses new held connections of every kind with a wait to honour, answers plain polls, and serves those it holds", async () => {
    server = await startServer({ maxConnections: 2, shedRetryAfterMs: 1500, longPollTimeout: 30_000 });
    const s = server;
    const held = new WsClient(wsUrl(s.base, "in-1"));
    sockets.push(held);
    await held.opened;
    held.send({ subscribe: { "/x": 0 } });
    const events: string[] = [];
    const ac = new AbortController();
    const stream = sse(`${s.base}/in-2/sse?/x=0`, (e) => void events.push(e.data), { signal: ac.signal });
    await waitFor(() => connections() === 2, "two held");

    const why = "overloaded: 2 connections (at most 2)";
    const lp = await longPoll(s.base, "out-1", { "/x": 0 });
    expect(lp.status).toBe(503);
    expect(lp.headers.get("retry-after")).toBe("2");
    expect(JSON.parse(lp.text)).toEqual({ error: `${why}: retry after 2 s` });
    const refusedStream = await sse(`${s.base}/out-2/sse?/x=0`, () => {});
    expect(refusedStream.status).toBe(503);
    expect(refusedStream.headers.get("retry-after")).toBe("2");
    const ws = new WsClient(wsUrl(s.base, "out-3"));
    sockets.push(ws);
    // No frame: a refused socket is not welcomed, only closed.
    expect(await ws.whenClosed()).toEqual({ code: 1013, reason: `${why}: retry after 1500 ms` });
    expect(ws.frames).toEqual([]);
    // A plain poll holds nothing: answered.
    expect((await poll(s.base, "out-4", { "/x": -1 })).status).toBe(200);
    expect(s.bus.stats()).toMatchObject({ refused: 3 });

    // Those held are served as before.
    await s.bus.publish("/x", "still served");
    await held.until(() => held.messages().some((m) => m.data === "still served"), "the socket's message");
    await waitFor(() => events.some((d) => d.includes("still served")), "the stream's message");
    ac.abort();
    await stream;
  });

  it.each(["websocket", "sse", "long-poll"] as TransportName[])(
    "%s: refused clients come back after the wait (spread, not together) and receive everything, once, in order",
    async (transport) => {
      server = await startServer({ maxConnections: 3, shedRetryAfterMs: 400, longPollTimeout: 1000 });
      const s = server;
      const got: number[][] = [];
      for (let i = 0; i < 6; i++) {
        const c = new ClientBus({ baseUrl: s.url + "/", transports: [transport], callbackInterval: 100 });
        clients.push(c);
        const mine: number[] = (got[i] = []);
        c.subscribe("/all", (_d, _g, id) => void mine.push(id), 0);
        c.start();
      }
      // Three are in; the others are refused and keep coming back, never hot.
      await waitFor(() => s.bus.stats().refused >= 3, () => `refusals (${JSON.stringify(s.bus.stats())})`);
      for (let i = 1; i <= 20; i++) await s.bus.publish("/all", i);
      // Capacity comes back: three that got in leave.
      await waitFor(() => got.filter((g) => g.length === 20).length >= 3, () => `three with all 20: ${got.map((g) => g.length)}`);
      const inside = got.map((g, i) => (g.length === 20 ? i : -1)).filter((i) => i >= 0);
      for (const i of inside.slice(0, 3)) clients[i].stop();
      for (let i = 21; i <= 30; i++) await s.bus.publish("/all", i);
      const want = Array.from({ length: 30 }, (_, i) => i + 1);
      const live = clients.map((_c, i) => i).filter((i) => !inside.slice(0, 3).includes(i));
      await waitFor(() => live.every((i) => got[i].length >= 30), () => `every client left running has all 30: ${live.map((i) => got[i].length)}`, 15_000);
      for (const i of live) expect(got[i]).toEqual(want);
      // Coming back after 400–800 ms each: a handful of refusals, not a hot loop.
      expect(s.bus.stats().refused).toBeLessThan(60);
    },
  );
});

describe("over maxEventLoopLagMs", () => {
  it("refuses while the loop lags, polls too, and serves again once it does not", async () => {
    server = await startServer({ maxEventLoopLagMs: 100, shedRetryAfterMs: 1000 });
    const s = server;
    expect((await poll(s.base, "lag", { "/l": -1 })).status).toBe(200);
    await pause(100); // Node's delay monitor counts from its first tick on
    // The app blocks its own loop for a while (again, should a loaded machine's timers read it late).
    let refused = await poll(s.base, "lag", { "/l": -1 });
    for (let i = 0; i < 10 && refused.status === 200; i++) {
      const until = Date.now() + 250;
      while (Date.now() < until);
      await pause(30);
      refused = await poll(s.base, "lag", { "/l": -1 });
    }
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.text).error).toMatch(/^overloaded: the event loop lags \d+ ms: retry after 1 s$/);
    // The reading covers the last second: within two, it is served again.
    await waitFor(async () => (await poll(s.base, "lag", { "/l": -1 })).status === 200, "served again", 5000, 200);
    expect(parse((await poll(s.base, "lag", { "/l": -1 })).text)[0].channel).toBe("/__status");
  });
});
