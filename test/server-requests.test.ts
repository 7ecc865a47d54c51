/**
 * Requests with replies, as the wire carries them (docs/protocol.md#12-requests): over
 * `POST {base}/{clientId}/request` and WebSocket frames, each (client, id) run once, one at a time
 * per client, in order; handlers see who asks; errors, limits and client publishes get their
 * documented answers; a reply never reaches another identity. The real client is in
 * client-requests.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Context } from "hono";
import { BackendUnavailableError, MemoryBackend, ProtocolError, type MessageBusOptions } from "../server/index.js";
import { parse, poll, WsClient, wsUrl } from "./fixtures/clients.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { pause, waitFor } from "./helpers/wait.js";

let server: TestServer | undefined;
const sockets: WsClient[] = [];
const errors: unknown[] = [];
afterEach(async () => {
  for (const w of sockets.splice(0)) w.close();
  await server?.close();
  server = undefined;
  errors.length = 0;
});

/** Users come from a header, as an app's session middleware would give them. */
const user = (c: Context) => c.req.header("x-user") ?? null;

async function start(options: MessageBusOptions = {}): Promise<TestServer> {
  server = await startServer({ userIdLookup: user, onError: (e) => errors.push(e), ...options });
  return server;
}

async function post(s: TestServer, clientId: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.base}/${clientId}/request`, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function socket(s: TestServer, clientId: string, headers: Record<string, string> = {}): WsClient {
  const ws = new WsClient(wsUrl(s.base, clientId), { headers });
  sockets.push(ws);
  return ws;
}

/** Replies a socket received, by id. */
const repliesOf = (ws: WsClient) =>
  (ws.frames as { channel: string; data: { id: number; status: number; data?: unknown; error?: string } }[][])
    .flat()
    .filter((m) => m.channel === "/__reply")
    .map((m) => m.data);

describe("POST {base}/{clientId}/request", () => {
  it("runs the handler with who asks, answers its reply; a retry of the same id gets the kept reply, not a second run", async () => {
    const s = await start();
    let runs = 0;
    s.bus.handle("whoami", (data, ctx) => {
      runs++;
      return { data, clientId: ctx.clientId, userId: ctx.userId, path: ctx.c.req.path };
    });
    const first = await post(s, "c1", { id: 1, method: "whoami", data: { x: "é😀" } }, { "x-user": "7" });
    expect(first).toEqual({ status: 200, body: { id: 1, status: 200, data: { data: { x: "é😀" }, clientId: "c1", userId: "7", path: "/message-bus/c1/request" } } });
    expect(await post(s, "c1", { id: 1, method: "whoami", data: "other data, same id" }, { "x-user": "7" })).toEqual(first);
    expect(runs).toBe(1);
    // The same client id and request id of another user is another request: run, and its own reply.
    const other = await post(s, "c1", { id: 1, method: "whoami", data: null }, { "x-user": "8" });
    expect(other.body).toMatchObject({ id: 1, status: 200, data: { userId: "8" } });
    expect(runs).toBe(2);
  });

  it("a batch runs in order, one at a time, and is answered with every reply in order", async () => {
    const s = await start();
    const order: number[] = [];
    let running = 0;
    let most = 0;
    s.bus.handle("slow", async (n) => {
      most = Math.max(most, ++running);
      await pause(5);
      order.push(n as number);
      running--;
      return n;
    });
    const requests = Array.from({ length: 20 }, (_, i) => ({ id: i + 1, method: "slow", data: i + 1 }));
    // Two batches at once from one client: still one at a time, in the order they came.
    const [a, b] = await Promise.all([
      post(s, "c2", { requests: requests.slice(0, 10) }),
      post(s, "c2", { requests: requests.slice(10) }),
    ]);
    expect(a.status).toBe(200);
    expect((a.body.replies as { id: number }[]).map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((b.body.replies as { data: number }[]).map((r) => r.data)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(order).toEqual(requests.map((r) => r.id));
    expect(most).toBe(1);
  });

  it("errors: a ProtocolError's status and words, anything else 500 and nothing more, unknown methods 404, slow handlers 504", async () => {
    const s = await start({ handlerTimeout: 100 });
    s.bus.handle("refuse", () => {
      throw new ProtocolError("not yours", 403);
    });
    s.bus.handle("crash", () => {
      throw new Error("secret database password in here");
    });
    s.bus.handle("hang", () => new Promise(() => {}));
    s.bus.handle("huge", () => "x".repeat(300_000));
    const r = await post(s, "c3", {
      requests: [
        { id: 1, method: "refuse" },
        { id: 2, method: "crash" },
        { id: 3, method: "missing" },
        { id: 4, method: "hang" },
        { id: 5, method: "huge" },
      ],
    });
    expect(r.body.replies).toEqual([
      { id: 1, status: 403, error: "not yours" },
      { id: 2, status: 500, error: "internal error" },
      { id: 3, status: 404, error: 'unknown method: "missing"' },
      { id: 4, status: 504, error: "the handler did not answer within 100 ms" },
      { id: 5, status: 500, error: "internal error" },
    ]);
    expect(JSON.stringify(r.body)).not.toContain("secret");
    expect(errors.map(String).join(" ")).toContain("secret database password");
    // One request alone is answered with its own status.
    expect(await post(s, "c3", { id: 6, method: "refuse" })).toEqual({ status: 403, body: { id: 6, status: 403, error: "not yours" } });
  });

  it("bad bodies are 400 with the reason; an id older than the replies kept is 409, never run again", async () => {
    const s = await start({ maxStoredReplies: 4 });
    let runs = 0;
    s.bus.handle("n", () => ++runs);
    for (const [body, error] of [
      [{ id: 0, method: "n" }, "bad request id: 0 (a positive integer)"],
      [{ id: 1.5, method: "n" }, "bad request id: 1.5 (a positive integer)"],
      [{ id: 1, method: "" }, 'bad method: "" (1-100 bytes of text)'],
      [{ requests: [{ id: 2, method: "n" }, { id: 1, method: "n" }] }, "request ids must increase: 1 after 2"],
      [{ requests: [] }, "no request given"],
      [[1, 2], "a request is an object: {\"id\":1,\"method\":\"say\",\"data\":…}"],
    ] as const) {
      expect(await post(s, "c4", body)).toEqual({ status: 400, body: { error: error } });
    }
    await post(s, "c4", { requests: [1, 2, 3, 4, 5, 6].map((id) => ({ id, method: "n" })) });
    expect(runs).toBe(6);
    expect(await post(s, "c4", { id: 2, method: "n" })).toEqual({ status: 409, body: { id: 2, status: 409, error: "request 2 is older than the replies kept: it is not run again" } });
    expect((await post(s, "c4", { id: 5, method: "n" })).body).toEqual({ id: 5, status: 200, data: 5 });
    expect(runs).toBe(6);
  });

  it("limits: past the rate requests wait their turn; past the in-flight limit they are 429 at once (not kept: asking again runs them); too many at once 413", async () => {
    const s = await start({ limits: { maxRequestsInFlight: 3, maxRequestsPerSecond: 1000, maxRequestsPerBatch: 8 } });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let runs = 0;
    s.bus.handle("wait", async () => {
      runs++;
      await gate;
      return "ok";
    });
    const held = post(s, "c5", { requests: [1, 2, 3, 4, 5].map((id) => ({ id, method: "wait" })) });
    await waitFor(() => runs === 1, "the first running");
    release();
    const replies = (await held).body.replies as { id: number; status: number; error?: string }[];
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
    expect(replies[3].error).toBe("too many requests waiting: at most 3 (at most 1000 run per second)");
    // Not kept: asked again, they run.
    expect((await post(s, "c5", { requests: [{ id: 4, method: "wait" }, { id: 5, method: "wait" }] })).body.replies).toEqual([
      { id: 4, status: 200, data: "ok" },
      { id: 5, status: 200, data: "ok" },
    ]);
    expect(await post(s, "c5", { requests: Array.from({ length: 9 }, (_, i) => ({ id: 10 + i, method: "wait" })) })).toEqual({ status: 413, body: { error: "too many requests at once: at most 8" } });

    const slow = await start({ limits: { maxRequestsPerSecond: 5 } });
    const at: number[] = [];
    slow.bus.handle("n", () => at.push(Date.now()));
    const burst = (await post(slow, "c6", { requests: Array.from({ length: 14 }, (_, i) => ({ id: i + 1, method: "n" })) })).body.replies as { status: number }[];
    // Every one ran, in order: a burst of twice the rate at once, the rest paced (never sooner).
    expect(burst.map((r) => r.status)).toEqual(Array(14).fill(200));
    expect(at[13] - at[0]).toBeGreaterThanOrEqual(700);
    // Another client is not held back by this one.
    const t0 = Date.now();
    expect((await post(slow, "c7", { id: 1, method: "n" })).status).toBe(200);
    expect(at.at(-1)! - t0).toBeLessThan(at[13] - at[0]);
  });

  it("the store down: 503, nothing runs; the retry runs it once the store is back", async () => {
    class FlakyLedgerBackend extends MemoryBackend {
      down = true;
      constructor() {
        super();
        const real = this.ledger;
        const guard = <T>(f: () => Promise<T>) => (this.down ? Promise.reject(new BackendUnavailableError("memory", new Error("down"), "request not run")) : f());
        (this as { ledger: typeof real }).ledger = Object.assign(Object.create(real), {
          claim: (...a: Parameters<typeof real.claim>) => guard(() => real.claim(...a)),
          settle: (...a: Parameters<typeof real.settle>) => guard(() => real.settle(...a)),
        });
      }
    }
    const backend = new FlakyLedgerBackend();
    const s = await start({ backend });
    let runs = 0;
    s.bus.handle("n", () => ++runs);
    expect((await post(s, "c8", { requests: [{ id: 1, method: "n" }, { id: 2, method: "n" }] })).body.replies).toEqual([
      { id: 1, status: 503, error: "the store is unavailable, try again later" },
      { id: 2, status: 503, error: "the store is unavailable, try again later" },
    ]);
    expect(runs).toBe(0);
    backend.down = false;
    expect((await post(s, "c8", { requests: [{ id: 1, method: "n" }, { id: 2, method: "n" }] })).body.replies).toEqual([
      { id: 1, status: 200, data: 1 },
      { id: 2, status: 200, data: 2 },
    ]);
  });
});

describe("data nested deeper than a reply can echo", () => {
  // JSON.parse takes any depth, JSON.stringify recurses: an echoed reply of deep data overflowed the
  // stack on the way out (found by `npm run fuzz`). The bound is on the way in, with its reason.
  const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
  const depthOf = (v: unknown): number => (Array.isArray(v) ? 1 + (v.length ? depthOf(v[0]) : 0) : 0);

  it("over HTTP: 1,000 levels are echoed, 1,001 and 20,000 are 400 with the reason, nothing logged", async () => {
    const s = await start();
    s.bus.handle("echo", (data) => data);
    const raw = async (id: number, depth: number) => {
      const res = await fetch(`${s.base}/d1/request`, { method: "POST", headers: { "Content-Type": "application/json" }, body: `{"id":${id},"method":"echo","data":${nested(depth)}}` });
      return { status: res.status, body: (await res.json()) as { error?: string; data?: unknown } };
    };
    const ok = await raw(1, 1000);
    expect(ok.status).toBe(200);
    expect(depthOf(ok.body.data)).toBe(1000);
    for (const [id, depth] of [[2, 1001], [3, 20_000]]) {
      expect(await raw(id, depth)).toEqual({ status: 400, body: { error: `request ${id}: data nested too deeply: at most 1000 levels` } });
    }
    expect(errors).toEqual([]);
  });

  it("on a WebSocket: close 1008 with the reason, nothing logged", async () => {
    const s = await start();
    s.bus.handle("echo", (data) => data);
    const ws = socket(s, "d2");
    await ws.opened;
    ws.send(`{"request":{"id":1,"method":"echo","data":${nested(20_000)}}}`);
    expect(await ws.whenClosed()).toEqual({ code: 1008, reason: "request 1: data nested too deeply: at most 1000 levels" });
    expect(errors).toEqual([]);
  });
});

describe("requests on a WebSocket", () => {
  it("frames in, replies as /__reply envelopes out, in order; the same ids over HTTP get the kept replies", async () => {
    const s = await start();
    let runs = 0;
    s.bus.handle("double", (n, ctx) => {
      runs++;
      return { n: (n as number) * 2, userId: ctx.userId, upgrade: ctx.c.req.header("upgrade") };
    });
    const ws = socket(s, "w1", { "x-user": "7" });
    await ws.opened;
    ws.send({ requests: [1, 2, 3].map((id) => ({ id, method: "double", data: id })) });
    ws.send({ request: { id: 4, method: "double", data: 4 } });
    await ws.until(() => repliesOf(ws).length === 4, "four replies");
    expect(repliesOf(ws)).toEqual([1, 2, 3, 4].map((id) => ({ id, status: 200, data: { n: id * 2, userId: "7", upgrade: "websocket" } })));
    // The client switched to HTTP without hearing them: the same replies, nothing run again.
    expect((await post(s, "w1", { requests: [{ id: 3, method: "double", data: 3 }, { id: 4, method: "double", data: 4 }] }, { "x-user": "7" })).body.replies).toEqual(
      repliesOf(ws).slice(2),
    );
    expect(runs).toBe(4);
  });

  it("a slow handler holds neither the socket's subscribes nor its live messages", async () => {
    const s = await start();
    let release!: () => void;
    s.bus.handle("wait", () => new Promise<string>((r) => (release = () => r("done"))));
    const ws = socket(s, "w2");
    await ws.opened;
    ws.send({ request: { id: 1, method: "wait" } });
    ws.send({ subscribe: { "/live": -1 } });
    await ws.until(() => ws.messages().some((m) => m.channel === "/__status" && (m.data as Record<string, unknown>)["/live"] === 0), "the subscribe answered");
    await s.bus.publish("/live", "meanwhile");
    await ws.until(() => ws.messages().some((m) => m.data === "meanwhile"), "a live message meanwhile");
    release();
    await ws.until(() => repliesOf(ws).length === 1, "the reply");
    expect(repliesOf(ws)).toEqual([{ id: 1, status: 200, data: "done" }]);
  });

  it("bad request frames close 1008 with the reason", async () => {
    const s = await start();
    const ws = socket(s, "w3");
    await ws.opened;
    ws.send({ request: { id: -1, method: "x" } });
    expect(await ws.whenClosed()).toEqual({ code: 1008, reason: "bad request id: -1 (a positive integer)" });
  });
});

describe("client publishes", () => {
  it("refused with 403 on every route unless clientPublish allows the channel; allowed ones reach subscribers, targeted as it says", async () => {
    const s = await start({
      clientPublish: (c, channel) => (channel === "/open" ? true : channel === "/to-7" ? { userIds: ["7"] } : c.req.header("x-user") === "admin"),
    });
    const publish = (id: number, channel: string, data: unknown) => ({ id, method: "__publish", data: { channel, data } });
    expect(await post(s, "p1", publish(1, "/closed", 1))).toEqual({ status: 403, body: { id: 1, status: 403, error: 'publishing to "/closed" is not allowed' } });
    const ws = socket(s, "p2");
    await ws.opened;
    ws.send({ request: publish(1, "/closed", 1) });
    await ws.until(() => repliesOf(ws).length === 1, "the refusal");
    expect(repliesOf(ws)).toEqual([{ id: 1, status: 403, error: 'publishing to "/closed" is not allowed' }]);
    expect(await s.bus.lastId("/closed")).toBe(0);

    expect((await post(s, "p1", publish(2, "/open", { hi: 1 }))).body).toEqual({ id: 2, status: 200, data: { global_id: 1, message_id: 1 } });
    expect((await post(s, "p1", publish(3, "/closed", 2), { "x-user": "admin" })).body).toMatchObject({ status: 200 });
    expect((await post(s, "p1", publish(4, "not a channel", 2))).body).toMatchObject({ status: 400 });
    // Targeted by the app's verdict: user 7 sees it, user 8 is only told where the channel stands.
    await post(s, "p1", publish(5, "/to-7", "secret"));
    const of = async (u: string) => parse((await poll(s.base, "reader", { "/to-7": 0 }, { headers: { "x-user": u } })).text).filter((m) => m.channel === "/to-7");
    expect((await of("7")).map((m) => m.data)).toEqual(["secret"]);
    expect(await of("8")).toEqual([]);
  });
});
