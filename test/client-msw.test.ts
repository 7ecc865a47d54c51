/**
 * The client against failures a real server will not produce on demand, mocked with msw: refused
 * and silent WebSockets, buffering proxies, 5xx bursts, 429, streams cut mid-message, replays, and a
 * server that restarted. A small fake bus in this file speaks the wire (README: Wire protocol) so
 * delivery can be checked exactly; each test breaks one thing and asserts which transport ends up in
 * use and that every message arrives once, in order. At the end, background polling:
 * shouldLongPollCallback and hidden tabs taking turns (minHiddenPollInterval), with a fake document
 * and localStorage.
 */
import { createServer } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket as WsSocket } from "ws";
import type { Message } from "../src/envelope.js";
import { encodeChunk, sseEvent } from "../src/wire.js";
import { waitFor } from "./helpers/wait.js";

// msw intercepts WebSockets by wrapping the global class; Node 20 has none, so lend it `ws`'s.
const hadWebSocket = "WebSocket" in globalThis;
if (!hadWebSocket) Object.defineProperty(globalThis, "WebSocket", { value: WsSocket, configurable: true, writable: true });

const { setupServer } = await import("msw/node");
const { http, HttpResponse, ws } = await import("msw");
const { MessageBus } = await import("../client/bus.js");
const { remember } = await import("../client/remember.js");
type Bus = InstanceType<typeof MessageBus>;
type TransportName = import("../client/types.js").TransportName;

const mock = setupServer();
// An unhandled WebSocket goes through to a closed port (the "refused" case); unhandled HTTP is a bug here.
beforeAll(() => mock.listen({ onUnhandledRequest: (req, print) => (req.url.startsWith("ws") || req.url.endsWith("/ws") ? undefined : print.error()) }));
afterAll(() => {
  mock.close();
  if (!hadWebSocket) delete (globalThis as { WebSocket?: unknown }).WebSocket;
});

/** A loopback port nothing listens on: a WebSocket msw lets through to it is refused. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const enc = new TextEncoder();
type Body = Record<string, number | string>;
type Kind = "poll" | "long-poll" | "chunked" | "sse" | "websocket";

/** A message bus that lives in the test: per-channel ids, an epoch, and live listeners. */
class FakeBus {
  epoch = "E1";
  private global = 0;
  private log = new Map<string, Message[]>();
  private listeners = new Set<(m: Message) => void>();
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private enders = new Set<() => void>();
  /** Every request by kind, with the subscription it carried. */
  readonly requests: { kind: Kind; body: Body; headers?: Headers; at: number }[] = [];
  /** WebSockets open now. */
  sockets = 0;
  /** WebSocket connection `n` (from 1) is closed with `code` instead of answering its subscription. */
  wsRefuse?: (n: number) => number | null;
  /** WebSocket connection `n` is closed with `code` when its `after`-th live message is due. */
  wsCut?: { connection: number; after: number; code: number };
  /** What happened, in order, for tests about ordering ("websocket", "answered long-poll", …). */
  readonly marks: string[] = [];
  holdMs = 400;
  /** When set, streams and sockets send a heartbeat this often (ms), as the server does. */
  heartbeatMs = 0;
  /** Connections of these kinds go quiet: no messages, no heartbeats (a half-open connection). */
  readonly muted = new Set<Kind>();

  constructor(readonly origin: string) {}

  get base(): string {
    return this.origin + "/message-bus";
  }

  publish(channel: string, data: unknown): Message {
    const list = this.log.get(channel) ?? [];
    this.log.set(channel, list);
    const m: Message = { global_id: ++this.global, message_id: list.length + 1, channel, data };
    list.push(m);
    for (const l of [...this.listeners]) l(m);
    return m;
  }

  /** Forgets everything, as a restarted memory server does. */
  restart(epoch: string): void {
    this.epoch = epoch;
    this.global = 0;
    this.log.clear();
  }

  count(kind: Kind): number {
    return this.requests.filter((r) => r.kind === kind).length;
  }

  /** What a subscription is owed now: the backlog after each position, then a status if one is due. */
  answer(body: Body): Message[] {
    const batch: Message[] = [];
    const status: Record<string, unknown> = {};
    let tell = false;
    const otherEpoch = typeof body.__epoch === "string" && body.__epoch !== "" && body.__epoch !== this.epoch;
    if (body.__epoch !== this.epoch) {
      status.__epoch = this.epoch;
      tell = true;
    }
    const reset: string[] = [];
    for (const [ch, v] of Object.entries(body)) {
      if (ch.startsWith("__")) continue;
      const list = this.log.get(ch) ?? [];
      let from = Number(v);
      if (from === -1) {
        status[ch] = list.length;
        tell = true;
        continue;
      }
      if (otherEpoch || from > list.length) {
        reset.push(ch);
        from = otherEpoch ? 0 : list.length;
        status[ch] = list.length;
        tell = true;
      }
      batch.push(...list.filter((m) => m.message_id > from));
    }
    if (reset.length) status.__reset = reset;
    batch.sort((a, b) => a.global_id - b.global_id);
    if (tell) batch.push({ global_id: -1, message_id: -1, channel: "/__status", data: status });
    return batch;
  }

  /** Calls `fn` every heartbeatMs until the test ends (nothing when heartbeats are off). */
  every(fn: () => void): void {
    if (!this.heartbeatMs) return;
    const tick = () => {
      fn();
      this.later(this.heartbeatMs, tick);
    };
    this.later(this.heartbeatMs, tick);
  }

  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  /** Live messages on the body's channels until `stop` is called. */
  follow(body: Body, fn: (m: Message) => void): () => void {
    const l = (m: Message) => {
      if (m.channel in body) fn(m);
    };
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** A response body the fake writes to; it ends itself after `holdMs` unless told otherwise. */
  stream(write: (push: (s: string) => void, end: () => void) => void): ReadableStream<Uint8Array> {
    let ended = false;
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    const stops: (() => void)[] = [];
    const end = () => {
      if (ended) return;
      ended = true;
      for (const s of stops) s();
      this.enders.delete(end);
      try {
        ctl.close();
      } catch {
        // cancelled by the client already
      }
    };
    this.enders.add(end);
    return new ReadableStream<Uint8Array>({
      start: (c) => {
        ctl = c;
        write((s) => {
          if (!ended) ctl.enqueue(enc.encode(s));
        }, end);
      },
      cancel: () => end(),
    }) as ReadableStream<Uint8Array> & { stops?: unknown };
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    for (const e of [...this.enders]) e();
    this.listeners.clear();
  }
}

type WsMode = "normal" | "silent" | "refused" | "replay";
type Override = (kind: Kind, fake: FakeBus, n: number, body: Body) => Response | Promise<Response | null> | "silent" | null;

/**
 * The fake's HTTP and WebSocket handlers. `override(kind, fake, n)` (n: this kind's request number,
 * from 1) may answer instead: a Response, "silent" (headers, then nothing), or null for the normal answer.
 */
function handlers(fake: FakeBus, override: Override = () => null, wsMode: WsMode = "normal") {
  const plain = (body: Body, held: boolean): Promise<Response> =>
    new Promise((resolve) => {
      const now = fake.answer(body);
      const reply = (batch: Message[]) =>
        resolve(HttpResponse.text(JSON.stringify(batch), { headers: { "content-type": "application/json; charset=utf-8" } }));
      if (now.length || !held) return reply(now);
      let done = false;
      const stop = fake.follow(body, () => {
        if (done) return;
        done = true;
        stop();
        // Let a burst gather into one answer, as the server's per-tick flush does.
        setImmediate(() => reply(fake.answer(body)));
      });
      fake.later(fake.holdMs, () => {
        if (done) return;
        done = true;
        stop();
        reply([]);
      });
    });

  const chunked = (body: Body) =>
    new HttpResponse(
      fake.stream((push, end) => {
        const first = fake.answer(body);
        const pos: Body = { ...body };
        const advance = (batch: Message[]) => {
          for (const m of batch) if (m.channel !== "/__status") pos[m.channel] = m.message_id;
        };
        advance(first);
        push(encodeChunk(JSON.stringify(first)));
        const stop = fake.follow(body, (m) => {
          push(encodeChunk(JSON.stringify([m])));
          pos[m.channel] = m.message_id;
        });
        fake.later(fake.holdMs, () => {
          stop();
          push(encodeChunk("[]"));
          end();
        });
      }),
      { headers: { "content-type": "text/plain; charset=utf-8" } },
    );

  const sse = (body: Body) =>
    new HttpResponse(
      fake.stream((push) => {
        const batch = fake.answer({ ...body, __epoch: fake.epoch });
        const head: Record<string, unknown> = { __epoch: fake.epoch };
        for (const [ch, v] of Object.entries(body)) if (!ch.startsWith("__")) head[ch] = Number(v) === -1 ? 0 : Number(v);
        const status = batch.find((m) => m.channel === "/__status");
        if (status) Object.assign(head, status.data as object);
        push("retry: 1000\n: fake\n\n" + sseEvent("x", JSON.stringify({ global_id: -1, message_id: -1, channel: "/__status", data: head })));
        for (const m of batch) if (m.channel !== "/__status") push(sseEvent("x", JSON.stringify(m)));
        fake.follow(body, (m) => {
          if (!fake.muted.has("sse")) push(sseEvent("x", JSON.stringify(m)));
        });
        fake.every(() => {
          if (!fake.muted.has("sse")) push(": hb\n\n");
        });
      }),
      { headers: { "content-type": "text/event-stream; charset=utf-8" } },
    );

  const silent = () => new HttpResponse(fake.stream(() => {}), { headers: { "content-type": "text/plain; charset=utf-8" } });

  const list = [
    http.post(`${fake.base}/:clientId/poll`, async ({ request }) => {
      const body = (await request.json()) as Body;
      const dlp = new URL(request.url).search.includes("dlp=t");
      const kind: Kind = dlp ? "poll" : request.headers.get("dont-chunk") ? "long-poll" : "chunked";
      fake.requests.push({ kind, body, headers: request.headers, at: Date.now() });
      const o = await override(kind, fake, fake.count(kind), body);
      if (o === "silent") return silent();
      if (o) return o;
      return kind === "chunked" ? chunked(body) : plain(body, kind === "long-poll");
    }),
    http.post(`${fake.base}/:clientId/sse`, async ({ request }) => {
      const body = (await request.json()) as Body;
      fake.requests.push({ kind: "sse", body, headers: request.headers, at: Date.now() });
      const o = await override("sse", fake, fake.count("sse"), body);
      if (o === "silent") return new HttpResponse(fake.stream(() => {}), { headers: { "content-type": "text/event-stream" } });
      if (o) return o;
      return sse(body);
    }),
  ];
  if (wsMode === "refused") return list; // unhandled: msw lets it through to a closed port
  const link = ws.link(fake.base.replace("http", "ws") + "/*");
  return [
    ...list,
    link.addEventListener("connection", ({ client }) => {
      fake.requests.push({ kind: "websocket", body: {}, at: Date.now() });
      fake.sockets++;
      client.addEventListener("close", () => fake.sockets--);
      fake.marks.push("websocket");
      const connection = fake.count("websocket");
      let live = 0;
      if (wsMode === "silent") return;
      client.send(JSON.stringify([{ global_id: -1, message_id: -1, channel: "/__status", data: { __epoch: fake.epoch } }]));
      const stops: (() => void)[] = [];
      let open = true;
      client.addEventListener("message", (ev) => {
        const frame = JSON.parse(String(ev.data)) as { subscribe?: Body };
        if (!frame.subscribe) return;
        const refuse = fake.wsRefuse?.(connection);
        if (refuse) return client.close(refuse, "channel refused");
        const answer = JSON.stringify(fake.answer(frame.subscribe));
        client.send(answer);
        if (wsMode === "replay") client.send(answer);
        stops.push(
          fake.follow(frame.subscribe, (m) => {
            if (fake.muted.has("websocket") || !open) return;
            const cut = fake.wsCut;
            if (cut && cut.connection === connection && ++live === cut.after) {
              open = false;
              return client.close(cut.code, "cut by the test");
            }
            client.send(JSON.stringify([m]));
            // A replaying server sends every live message twice, the second time with its predecessor.
            if (wsMode === "replay" && m.message_id > 1) client.send(JSON.stringify(fake.answer({ [m.channel]: m.message_id - 2 })));
          }),
        );
      });
      fake.every(() => {
        if (open && !fake.muted.has("websocket")) client.send("[]");
      });
      client.addEventListener("close", () => {
        open = false;
        stops.forEach((s) => s());
      });
    }),
  ];
}

// ---- the client side -------------------------------------------------------------------------------

const CHANNELS = ["/m/a", "/m/b"];
const buses: Bus[] = [];
const fakes: FakeBus[] = [];

afterEach(() => {
  for (const b of buses.splice(0)) b.stop();
  for (const f of fakes.splice(0)) f.close();
  mock.resetHandlers();
});

async function setup(
  override?: Override,
  wsMode: WsMode = "normal",
): Promise<FakeBus> {
  // A fresh origin per test, so the transport one test remembers is not another's start.
  const fake = new FakeBus(`http://127.0.0.1:${await closedPort()}`);
  fakes.push(fake);
  mock.use(...handlers(fake, override, wsMode));
  return fake;
}

interface Followed {
  bus: Bus;
  got: Record<string, { data: unknown; id: number }[]>;
  seen: TransportName[];
  resets: string[];
}

function start(fake: FakeBus, options: ConstructorParameters<typeof MessageBus>[0], lastId = 0): Followed {
  const bus = new MessageBus({
    baseUrl: fake.origin + "/",
    callbackInterval: 30,
    minPollInterval: 5,
    firstChunkTimeout: 1000,
    retryTransportInterval: 60_000,
    heartbeatInterval: 60_000,
    ...options,
  });
  buses.push(bus);
  const f: Followed = { bus, got: {}, seen: [], resets: [] };
  bus.onTransport((n) => f.seen.push(n));
  bus.onReset((ch) => f.resets.push(ch));
  for (const ch of CHANNELS) {
    f.got[ch] = [];
    bus.subscribe(ch, (data, _g, id) => f.got[ch].push({ data, id }), lastId);
  }
  return f;
}

/** Publishes `count` messages per channel, interleaved, a few at a time so they spread over batches. */
async function publish(fake: FakeBus, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) {
    for (const ch of CHANNELS) fake.publish(ch, { ch, i });
    if (i % 3 === 0) await new Promise((r) => setTimeout(r, 2));
  }
}

/** Every channel has exactly messages 1..total, in order, once each, with their data. */
async function expectExact(f: Followed, total: number): Promise<void> {
  await waitFor(
    () => CHANNELS.every((ch) => f.got[ch].length >= total),
    () => `${total} messages on every channel (${JSON.stringify(Object.fromEntries(CHANNELS.map((ch) => [ch, f.got[ch].length])))} via ${f.bus.transport})`,
  );
  // A duplicate would come with the next batch; give one a chance to show.
  await new Promise((r) => setTimeout(r, 60));
  for (const ch of CHANNELS) {
    expect(f.got[ch].map((m) => m.id)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(f.got[ch].map((m) => m.data)).toEqual(Array.from({ length: total }, (_, i) => ({ ch, i })));
  }
}

describe("WebSocket trouble", () => {
  it("an upgrade that is refused gives way: SSE takes over from the first long-poll", async () => {
    const fake = await setup(undefined, "refused");
    await publish(fake, 0, 10);
    const f = start(fake, {});
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll", "sse"]);
    expect(f.bus.stats.transportSwitches).toBe(1);
  });

  it("a socket that opens but never welcomes gives way at once, even when it was the remembered start", async () => {
    const fake = await setup(undefined, "silent");
    remember(fake.base + "/x/poll", "websocket");
    await publish(fake, 0, 10);
    const f = start(fake, {});
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["websocket", "sse"]);
    expect(fake.count("websocket")).toBe(1);
  });

  it("a working socket is taken over live from long-poll", async () => {
    const fake = await setup();
    await publish(fake, 0, 10);
    const f = start(fake, {});
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll", "websocket"]);
  });
});

describe("new messages only (-1)", () => {
  it("the first transport settles every -1 before a better one is probed, so no early message slips between them", async () => {
    const fake = await setup(async (kind, fk, n, body) => {
      if (kind !== "long-poll" || n !== 1) return null;
      // A slow first answer: a probe started meanwhile would ask -1 at another "now".
      await new Promise((r) => setTimeout(r, 300));
      fk.marks.push("answered long-poll");
      return HttpResponse.json(fk.answer(body));
    });
    await publish(fake, 0, 10);
    const f = start(fake, {}, -1);
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    expect(fake.marks).toEqual(["answered long-poll", "websocket"]);
    expect(fake.requests.find((r) => r.kind === "long-poll")!.body).toMatchObject({ "/m/a": -1, "/m/b": -1 });
    await publish(fake, 10, 10);
    await waitFor(() => CHANNELS.every((ch) => f.got[ch].length >= 10), () => `10 messages on every channel (${JSON.stringify(f.got)})`);
    await new Promise((r) => setTimeout(r, 60));
    for (const ch of CHANNELS) expect(f.got[ch].map((m) => m.id)).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
  });
});

describe("buffering proxy: streams that send nothing", () => {
  it("a silent SSE stream: plain long-poll delivers (never chunked while SSE is listed), SSE rests", async () => {
    const fake = await setup((kind) => (kind === "sse" || kind === "chunked" ? "silent" : null));
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["sse", "long-poll"] });
    await waitFor(() => fake.count("long-poll") > 0 && fake.count("sse") > 0, () => `a long-poll and an SSE request (${JSON.stringify(fake.requests.map((r) => r.kind))})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll"]);
    expect(f.bus.transport).toBe("long-poll");
    // One SSE probe, given up after firstChunkTimeout, then resting; streaming is SSE's job, so no chunked long-poll.
    expect(fake.count("sse")).toBe(1);
    expect(fake.count("chunked")).toBe(0);
  });

  it("a silent chunked long-poll (long-poll alone): the next long-polls go unchunked and deliver", async () => {
    const fake = await setup((kind) => (kind === "chunked" ? "silent" : null));
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["long-poll"] });
    await waitFor(() => fake.count("long-poll") > 0, () => `a long-poll (${JSON.stringify(fake.requests.map((r) => r.kind))})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll"]);
    // One chunked attempt; after it, retryChunkedAfterRequests (30) plain ones.
    expect(fake.count("chunked")).toBe(1);
    expect(fake.requests[0].kind).toBe("chunked");
  });

  it("an SSE stream that stays silent past firstChunkTimeout is left for long-poll, then retried and taken", async () => {
    const fake = await setup((kind, _f, n) => (kind === "sse" && n === 1 ? "silent" : null));
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["sse", "long-poll"], retryTransportInterval: 200 });
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll", "sse"]);
    expect(fake.count("sse")).toBe(2);
  });
});

describe("error bursts", () => {
  it("502/503 on long-poll: backs off, then resumes from its positions without loss", async () => {
    const codes = [502, 503, 502, 503];
    const fake = await setup((kind, _f, n) =>
      kind === "long-poll" && n <= codes.length ? HttpResponse.json({ error: "bad gateway" }, { status: codes[n - 1] }) : null,
    );
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["long-poll"], enableChunkedEncoding: false });
    await waitFor(() => fake.count("long-poll") > codes.length, () => `${codes.length + 1} long-polls (${fake.count("long-poll")})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll"]);
    // Every request after the burst asks from 0 on: nothing was taken as delivered by a failure.
    expect(fake.requests.filter((r) => r.kind === "long-poll").slice(0, codes.length + 1).map((r) => r.body["/m/a"])).toEqual([0, 0, 0, 0, 0]);
  });

  it("503 on SSE: falls back to long-poll, probes again, and is back on SSE", async () => {
    const fake = await setup((kind, _f, n) => (kind === "sse" && n <= 2 ? HttpResponse.json({ error: "unavailable" }, { status: 503 }) : null));
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["sse", "long-poll"], retryTransportInterval: 50 });
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll", "sse"]);
    expect(fake.count("sse")).toBe(3);
  });

  it("429 honours Retry-After before asking again", async () => {
    const asked: number[] = [];
    const fake = await setup((kind, _f, n) => {
      if (kind !== "poll") return null;
      asked.push(Date.now());
      return n === 2 ? HttpResponse.json({ error: "slow down" }, { status: 429, headers: { "Retry-After": "1" } }) : null;
    });
    await publish(fake, 0, 5);
    const f = start(fake, { transports: ["poll"] });
    await waitFor(() => asked.length >= 3, () => `3 requests (${asked.length})`);
    await publish(fake, 5, 5);
    await expectExact(f, 10);
    expect(f.seen).toEqual(["poll"]);
    // The third request waited the second the server asked for (less a little clock granularity);
    // without Retry-After it would have come after callbackInterval (30 ms).
    expect(asked[2] - asked[1]).toBeGreaterThanOrEqual(950);
  });
});

describe("WebSocket close codes", () => {
  it("1008 (a refused subscription) falls back and does not retry hot, however short retryTransportInterval is", async () => {
    const fake = await setup();
    fake.wsRefuse = () => 1008;
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["websocket", "sse"], retryTransportInterval: 20 });
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await publish(fake, 10, 20);
    await expectExact(f, 30);
    // Ten retry intervals later: still the one attempt (it rests maxPollInterval).
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.count("websocket")).toBe(1);
    expect(f.seen).toEqual(["websocket", "sse"]);
  });

  it("1013 (too slow) reconnects the WebSocket at once and resumes from the positions held", async () => {
    const fake = await setup();
    fake.wsCut = { connection: 1, after: 15, code: 1013 };
    await publish(fake, 0, 5);
    const f = start(fake, { transports: ["websocket", "sse"] });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await publish(fake, 5, 25);
    await expectExact(f, 30);
    expect(fake.count("websocket")).toBe(2);
    expect(f.seen).toEqual(["websocket"]);
  });
});

describe("a working connection cut, with nothing to fall back to", () => {
  it("a forced WebSocket closed by the server (1001) reconnects at once, not after retryTransportInterval", async () => {
    const fake = await setup();
    fake.wsCut = { connection: 1, after: 15, code: 1001 };
    await publish(fake, 0, 5);
    // retryTransportInterval is a minute here: only an immediate resume can finish in time.
    const f = start(fake, { transports: ["websocket"] });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await publish(fake, 5, 25);
    await expectExact(f, 30);
    expect(fake.count("websocket")).toBe(2);
    expect(f.seen).toEqual(["websocket"]);
  });
});

describe("headers", () => {
  it("the app's headers go with every HTTP request (long-poll and SSE)", async () => {
    const fake = await setup();
    await publish(fake, 0, 3);
    const f = start(fake, { transports: ["sse", "long-poll"], headers: { "X-App": "cometbus-test" } });
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await expectExact(f, 3);
    const http = fake.requests.filter((r) => r.headers);
    expect([...new Set(http.map((r) => r.kind))].sort()).toEqual(["long-poll", "sse"]);
    expect(http.map((r) => r.headers!.get("x-app"))).toEqual(http.map(() => "cometbus-test"));
    expect(http.map((r) => r.headers!.get("content-type"))).toEqual(http.map(() => "application/json"));
  });
});

describe("silence for two heartbeats means dead", () => {
  it("a WebSocket that goes quiet mid-stream (no messages, no heartbeats) gives way to SSE, nothing lost", async () => {
    const fake = await setup();
    fake.heartbeatMs = 100;
    await publish(fake, 0, 10);
    const f = start(fake, { heartbeatInterval: 250 });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await waitFor(() => CHANNELS.every((ch) => f.got[ch].length === 10), () => `10 messages on every channel (${JSON.stringify(f.got)})`);
    fake.muted.add("websocket");
    await publish(fake, 10, 20);
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll", "websocket", "sse"]);
    expect(fake.count("websocket")).toBe(1);
  });

  it("an SSE stream that goes quiet gives way to long-poll; heartbeats alone keep a stream alive", async () => {
    const fake = await setup();
    fake.heartbeatMs = 100;
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["sse", "long-poll"], heartbeatInterval: 250 });
    await waitFor(() => f.bus.transport === "sse", () => `sse (on ${f.bus.transport})`);
    // Four heartbeat periods with heartbeats only: still alive, still SSE, one stream.
    await new Promise((r) => setTimeout(r, 1000));
    expect([f.bus.transport, fake.count("sse")]).toEqual(["sse", 1]);
    fake.muted.add("sse");
    await publish(fake, 10, 20);
    await waitFor(() => f.bus.transport === "long-poll", () => `long-poll (on ${f.bus.transport})`);
    await expectExact(f, 30);
    expect(f.seen).toEqual(["long-poll", "sse", "long-poll"]);
  });
});

describe("cuts and replays", () => {
  it("an SSE stream cut mid-event: the half event is dropped and the stream resumes at once from the positions held", async () => {
    const fake = await setup((kind, fk, n) => {
      if (kind !== "sse" || n !== 1) return null;
      return new HttpResponse(
        fk.stream((push, end) => {
          const head = { __epoch: fk.epoch, "/m/a": 0, "/m/b": 0 };
          let out = sseEvent("x", JSON.stringify({ global_id: -1, message_id: -1, channel: "/__status", data: head }));
          for (const m of fk.answer({ "/m/a": 0, "/m/b": 0, __epoch: fk.epoch }).slice(0, 5)) out += sseEvent("x", JSON.stringify(m));
          const sixth = fk.answer({ "/m/a": 0, "/m/b": 0, __epoch: fk.epoch })[5];
          push(out + sseEvent("x", JSON.stringify(sixth)).slice(0, 30));
          end();
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    });
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["sse"] });
    await waitFor(() => fake.count("sse") >= 2, () => `2 SSE requests (${fake.count("sse")})`);
    await publish(fake, 10, 10);
    await expectExact(f, 20);
    expect(f.seen).toEqual(["sse"]);
    // Five whole events (3 on /m/a, 2 on /m/b, interleaved) came before the cut.
    const second = fake.requests.filter((r) => r.kind === "sse")[1].body;
    expect([second["/m/a"], second["/m/b"]]).toEqual([3, 2]);
  });

  it("a chunked long-poll cut mid-chunk resumes at once and loses nothing", async () => {
    const fake = await setup((kind, fk, n) => {
      if (kind !== "chunked" || n !== 1) return null;
      return new HttpResponse(
        fk.stream((push, end) => {
          const all = fk.answer({ "/m/a": 0, "/m/b": 0 }).filter((m) => m.channel !== "/__status");
          push(encodeChunk(JSON.stringify(all.slice(0, 4))) + encodeChunk(JSON.stringify(all.slice(4, 8))).slice(0, 25));
          end();
        }),
        { headers: { "content-type": "text/plain; charset=utf-8" } },
      );
    });
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["long-poll"] });
    await waitFor(() => fake.count("chunked") >= 2, () => `2 chunked polls (${fake.count("chunked")})`);
    await publish(fake, 10, 10);
    await expectExact(f, 20);
    const second = fake.requests.filter((r) => r.kind === "chunked")[1].body;
    expect([second["/m/a"], second["/m/b"]]).toEqual([2, 2]);
  });

  it("messages replayed by the server (at or below the position) are dropped", async () => {
    const fake = await setup((kind, fk, n) => {
      if (kind !== "poll" || n !== 3) return null;
      // A misbehaving proxy serves an old answer again: everything from the start.
      return HttpResponse.json(fk.answer({ "/m/a": 0, "/m/b": 0 }));
    });
    await publish(fake, 0, 10);
    const f = start(fake, { transports: ["poll"] });
    await waitFor(() => fake.count("poll") >= 4, () => `4 polls (${fake.count("poll")})`);
    await publish(fake, 10, 5);
    await expectExact(f, 15);
    expect(f.seen).toEqual(["poll"]);
  });

  it("a WebSocket that sends its backlog twice and every live message again is deduplicated too", async () => {
    const fake = await setup(undefined, "replay");
    await publish(fake, 0, 5);
    const f = start(fake, { transports: ["websocket"] });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await publish(fake, 5, 15);
    await expectExact(f, 20);
    expect(f.seen).toEqual(["websocket"]);
  });
});

describe("epochs", () => {
  it("a restarted server (new epoch) is noticed: onReset, positions from 0, the new messages delivered", async () => {
    const fake = await setup();
    await publish(fake, 0, 5);
    const f = start(fake, { transports: ["long-poll"], enableChunkedEncoding: false });
    await expectExact(f, 5);
    expect(f.bus.epoch).toBe("E1");
    fake.restart("E2");
    for (const ch of CHANNELS) f.got[ch] = [];
    await publish(fake, 0, 3);
    await expectExact(f, 3);
    expect(f.resets.sort()).toEqual([...CHANNELS].sort());
    expect(f.bus.epoch).toBe("E2");
  });
});

// ---- background polling: shouldLongPollCallback, minHiddenPollInterval ---------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the bus reads of a page: visibilityState and the visibilitychange event. */
class FakeDocument extends EventTarget {
  visibilityState: "visible" | "hidden";
  constructor(hidden: boolean) {
    super();
    this.visibilityState = hidden ? "hidden" : "visible";
  }
  setHidden(hidden: boolean): void {
    this.visibilityState = hidden ? "hidden" : "visible";
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

/** The origin's localStorage, shared by every bus in this process as by the tabs of one origin. */
class FakeStorage {
  private items = new Map<string, string>();
  getItem(k: string): string | null {
    return this.items.get(k) ?? null;
  }
  setItem(k: string, v: string): void {
    this.items.set(k, String(v));
  }
  removeItem(k: string): void {
    this.items.delete(k);
  }
}

describe("background polling", () => {
  const lent: string[] = [];
  /** Lends the process a browser global for one test. */
  function lend(name: "document" | "localStorage", value: unknown, throwing = false): void {
    if (!lent.includes(name)) lent.push(name);
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get: () => {
        // A sandboxed frame: touching localStorage throws.
        if (throwing) throw new DOMException("The document is sandboxed", "SecurityError");
        return value;
      },
    });
  }
  afterEach(() => {
    for (const b of buses.splice(0)) b.stop();
    for (const name of lent.splice(0)) delete (globalThis as Record<string, unknown>)[name];
    vi.restoreAllMocks();
  });

  const polls = (fake: FakeBus, since = 0) => fake.requests.filter((r) => r.kind === "poll" && r.at >= since);
  const gaps = (times: number[]) => times.slice(1).map((t, i) => t - times[i]);

  it("shouldLongPollCallback false moves a live WebSocket to polling every backgroundCallbackInterval; true brings the WebSocket back", async () => {
    const fake = await setup();
    fake.heartbeatMs = 50;
    await publish(fake, 0, 5);
    let live = true;
    let asked = 0;
    const f = start(fake, { backgroundCallbackInterval: 300, shouldLongPollCallback: () => (asked++, live) });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await expectExact(f, 5);
    // Live, it is asked again about once a second, however many heartbeats come (50 ms apart here).
    asked = 0;
    await sleep(2100);
    expect(asked).toBeGreaterThanOrEqual(1);
    expect(asked).toBeLessThanOrEqual(4);

    live = false;
    const off = Date.now();
    await waitFor(() => f.bus.transport === "poll", () => `poll (on ${f.bus.transport})`, 3000);
    expect(Date.now() - off).toBeLessThan(1500);
    await waitFor(() => fake.sockets === 0, () => `no socket open (${fake.sockets})`, 3000);
    await publish(fake, 5, 5);
    await waitFor(() => polls(fake, off).length >= 5, () => `5 polls (${polls(fake, off).length})`, 5000);
    // Each poll waits out backgroundCallbackInterval (300 ms), not callbackInterval (30 ms here).
    for (const gap of gaps(polls(fake, off).map((r) => r.at))) expect(gap).toBeGreaterThanOrEqual(280);
    await expectExact(f, 10);

    live = true;
    const on = Date.now();
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`, 3000);
    expect(Date.now() - on).toBeLessThan(1500);
    await publish(fake, 10, 5);
    await expectExact(f, 15);
    expect(f.seen).toEqual(["long-poll", "websocket", "poll", "websocket"]);
    expect(fake.sockets).toBe(1);
  });

  it("with a callback, visibility no longer decides: a hidden tab it keeps live stays on its WebSocket, and a visibility change asks it at once", async () => {
    const doc = new FakeDocument(false);
    lend("document", doc);
    const fake = await setup();
    await publish(fake, 0, 5);
    let live = true;
    const f = start(fake, { backgroundCallbackInterval: 300, shouldLongPollCallback: () => live });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    doc.setHidden(true);
    expect(f.bus.transport).toBe("websocket");
    const hidden = Date.now();
    await sleep(1200);
    expect([f.bus.transport, polls(fake, hidden).length, fake.sockets]).toEqual(["websocket", 0, 1]);
    await publish(fake, 5, 5);
    await expectExact(f, 10);

    // Shown again, but the callback says no: the visibility change itself asks it, no timer needed.
    live = false;
    doc.setHidden(false);
    expect(f.bus.transport).toBe("poll");
    expect(f.seen).toEqual(["long-poll", "websocket", "poll"]);
  });

  it("alwaysLongPoll wins over a callback that says false, which is then not even asked", async () => {
    const fake = await setup();
    await publish(fake, 0, 5);
    let asked = 0;
    const f = start(fake, {
      alwaysLongPoll: true,
      backgroundCallbackInterval: 300,
      shouldLongPollCallback: () => (asked++, false),
    });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await sleep(1200);
    expect([f.bus.transport, asked]).toEqual(["websocket", 0]);

    // Settings change on a live bus: without alwaysLongPoll the callback decides…
    f.bus.alwaysLongPoll = false;
    await waitFor(() => f.bus.transport === "poll", () => `poll (on ${f.bus.transport})`, 3000);
    expect(asked).toBeGreaterThan(0);
    // …and with it again the bus is live, whatever the callback says.
    f.bus.alwaysLongPoll = true;
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`, 3000);
    await publish(fake, 5, 5);
    await expectExact(f, 10);
    expect(f.seen).toEqual(["long-poll", "websocket", "poll", "websocket"]);
  });

  it("a callback that throws counts as not set: logged once, the bus goes by visibility, and works on once the callback does", async () => {
    const doc = new FakeDocument(false);
    lend("document", doc);
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const fake = await setup();
    fake.heartbeatMs = 50;
    await publish(fake, 0, 5);
    let broken = true;
    let asked = 0;
    const f = start(fake, {
      backgroundCallbackInterval: 300,
      shouldLongPollCallback: () => {
        asked++;
        if (broken) throw new Error("the app's bug");
        return false;
      },
    });
    await waitFor(() => f.bus.transport === "websocket", () => `websocket (on ${f.bus.transport})`);
    await expectExact(f, 5);
    await sleep(2200);
    // Asked again and again, logged once, still live (visible page).
    expect(asked).toBeGreaterThanOrEqual(3);
    expect(logged).toHaveBeenCalledTimes(1);
    expect(String(logged.mock.calls[0][0])).toContain("shouldLongPollCallback");
    expect(f.bus.transport).toBe("websocket");

    // As with no callback, hiding the page drops to polling and showing it comes back.
    doc.setHidden(true);
    expect(f.bus.transport).toBe("poll");
    doc.setHidden(false);
    expect(f.bus.transport).toBe("websocket");
    await publish(fake, 5, 5);
    await expectExact(f, 10);

    // Mended, it is obeyed (false: poll) without another log.
    broken = false;
    await waitFor(() => f.bus.transport === "poll", () => `poll (on ${f.bus.transport})`, 3000);
    expect(logged).toHaveBeenCalledTimes(1);
    expect(f.seen).toEqual(["long-poll", "websocket", "poll", "websocket", "poll"]);
  });

  it("two hidden tabs sharing localStorage never poll within minHiddenPollInterval of each other", async () => {
    lend("document", new FakeDocument(true));
    const store = new FakeStorage();
    lend("localStorage", store);
    const fake = await setup();
    await publish(fake, 0, 3);
    const opts = { backgroundCallbackInterval: 50, minHiddenPollInterval: 600 };
    const a = start(fake, { ...opts, headers: { "X-Tab": "a" } });
    const b = start(fake, { ...opts, headers: { "X-Tab": "b" } });
    await sleep(3200);
    expect([a.bus.transport, b.bus.transport]).toEqual(["poll", "poll"]);
    const times = polls(fake).map((r) => r.at);
    // Each on its own would poll every 50 ms (about 120 polls between them); taking turns, at most
    // one per 600 ms (a few ms of slack: the fake sees a request a moment after the tab stamped it).
    expect(times.length).toBeGreaterThanOrEqual(3);
    expect(times.length).toBeLessThanOrEqual(7);
    for (const gap of gaps(times)) expect(gap).toBeGreaterThanOrEqual(590);
    // message-bus-client's key and format, so its tabs on the same origin take turns with these.
    const stamp = Number(store.getItem("__mbLastAjax"));
    expect(Date.now() - stamp).toBeLessThan(1300);
    expect(stamp).toBeGreaterThanOrEqual(times[times.length - 1] - 50);
  });

  it("a hidden tab waits while a message-bus-client tab keeps stamping __mbLastAjax, and polls freely where localStorage throws", async () => {
    lend("document", new FakeDocument(true));
    const store = new FakeStorage();
    lend("localStorage", store);
    const fake = await setup();
    const f = start(fake, { backgroundCallbackInterval: 50, minHiddenPollInterval: 600 });
    await waitFor(() => polls(fake).length >= 1, "a poll");
    // Another library's tab asks every 200 ms: this one never gets a 600 ms gap to poll in.
    const other = setInterval(() => store.setItem("__mbLastAjax", String(Date.now())), 200);
    store.setItem("__mbLastAjax", String(Date.now()));
    const from = Date.now();
    try {
      await sleep(1500);
      expect(polls(fake, from)).toHaveLength(0);
    } finally {
      clearInterval(other);
    }
    const quiet = Date.now();
    await waitFor(() => polls(fake, quiet).length >= 1, "a poll once the other tab stopped", 3000);

    // A sandboxed frame: no storage to take turns through, so back to one poll every 50 ms.
    lend("localStorage", store, true);
    const sandboxed = Date.now();
    await sleep(600);
    expect(polls(fake, sandboxed).length).toBeGreaterThanOrEqual(5);
    expect(f.bus.transport).toBe("poll");
  });
});
