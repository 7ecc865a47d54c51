import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { waitFor } from "./helpers/wait.js";

/**
 * Memory a hostile or slow client can pin, measured in a server process of its own (dist/, with
 * `--expose-gc`; bench/attack-server.mjs): N clients per transport that never read, asking for a
 * 10 MB backlog or hit by live traffic, and N connections of pipelined requests. The bound: what the
 * server holds per slow client stays near `maxBufferedBytes` (1 MiB) and goes when the client goes.
 * Before the hardening, 20 such clients pinned 400 MB and more.
 */
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SERVER = fileURLToPath(new URL("../bench/attack-server.mjs", import.meta.url));
const N = 20;
const MB = 1024 * 1024;
/** Per slow client: its page in flight and what its socket buffers, with room for the allocator. */
const PER_CLIENT = 2 * MB;
const SLACK = 40 * MB;

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
}

let child: ChildProcess;
let base: string;
let controlUrl: string;
let port: number;
const sockets = new Set<Socket>();

async function control<T>(path: string, body?: unknown): Promise<T> {
  const r = await fetch(`${controlUrl}${path}`, body === undefined ? {} : { method: "POST", body: JSON.stringify(body) });
  return (await r.json()) as T;
}
const memory = () => control<Memory>("/mem");
const held = (m: Memory) => m.heapUsed + m.external;
const subscribers = async () => (await control<{ subscribers: Record<string, number> }>("/stats")).subscribers;

/**
 * Waits ask the server process over HTTP: every 50 ms, so asking adds little to the memory being
 * measured (and samples the peak often enough), for up to 15 s while N clients per transport
 * connect or are cut.
 */
const WAIT_MS = 15_000;
const WAIT_EVERY_MS = 50;

beforeAll(async () => {
  if (!existsSync(`${ROOT}/dist/server/index.js`)) throw new Error("dist/ is missing: run npm run build (npm test does)");
  // A stall deadline of 2 s, so a client that takes nothing at all is cut within the test.
  const config = { limits: { maxStallMs: 2000 }, heartbeatInterval: 0 };
  child = spawn(process.execPath, ["--expose-gc", SERVER, "--root", ROOT, "--config", JSON.stringify(config)], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = /attack-server (\{.*\})\n/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`attack-server exited ${code}`)));
  });
  const info = JSON.parse(line) as { url: string; control: string };
  base = info.url;
  controlUrl = info.control;
  port = Number(new URL(base).port);
  // Ten channels of 1,000 messages of 1 KB: a 10 MB backlog for every client that asks from 0.
  await control("/publish", { channels: Array.from({ length: 10 }, (_, i) => `/ch${i}`), count: 1000, bytes: 1024 });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  child?.kill("SIGTERM");
});

function rawRequest(text: string): Socket {
  const s = connect(port, "127.0.0.1");
  sockets.add(s);
  s.on("error", () => {});
  s.on("close", () => sockets.delete(s));
  s.write(text);
  // Never read: what the server sends piles up in its buffers, then in the kernel's.
  s.pause();
  return s;
}

const ALL_FROM_0 = Array.from({ length: 10 }, (_, i) => [`/ch${i}`, 0]);
const FORM = "Content-Type: application/x-www-form-urlencoded\r\n";

function post(path: string, body: string, headers = ""): string {
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${FORM}${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** One client of `transport` that subscribes from `positions` and never reads. */
async function nonReader(transport: string, id: string, positions: (string | number)[][]): Promise<() => void> {
  const form = positions.map(([ch, p]) => `${encodeURIComponent(ch)}=${p}`).join("&");
  if (transport === "websocket") {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}/${id}/ws`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    ws.send(JSON.stringify({ subscribe: Object.fromEntries(positions) }));
    (ws as unknown as { _socket: Socket })._socket.pause();
    return () => ws.terminate();
  }
  const path = `/message-bus/${id}`;
  const text =
    transport === "sse"
      ? `GET ${path}/sse?${form} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`
      : transport === "poll"
        ? post(`${path}/poll?dlp=t`, form)
        : post(`${path}/poll`, form, transport === "long-poll" ? "Dont-Chunk: true\r\n" : "");
  const s = rawRequest(text);
  return () => s.destroy();
}

describe(`memory per slow client (${N} per transport, 10 MB backlog each)`, () => {
  let baseline: Memory;
  beforeAll(async () => {
    baseline = await memory();
  });

  it.each(["sse", "websocket", "chunked", "long-poll", "poll"])("%s: catch-up pinned near the limit, released when they go", async (transport) => {
    const before = await memory();
    const stops = await Promise.all(Array.from({ length: N }, (_, i) => nonReader(transport, `cu-${transport}-${i}`, ALL_FROM_0)));
    await new Promise((r) => setTimeout(r, 1500));
    const during = await memory();
    const grew = held(during) - held(before);
    expect({ transport, grewMB: Math.round(grew / MB) }).toEqual({ transport, grewMB: expect.toSatisfy((x: number) => x <= (N * PER_CLIENT + SLACK) / MB) });
    expect(during.rss - baseline.rss).toBeLessThan(N * PER_CLIENT + 2 * SLACK);
    for (const stop of stops) stop();
    await waitFor(async () => Object.values(await subscribers()).every((n) => n === 0), "every subscriber gone", WAIT_MS, WAIT_EVERY_MS);
    const after = await memory();
    expect(held(after) - held(before)).toBeLessThan(8 * MB);
  });

  it.each(["sse", "websocket", "chunked"])("%s: live traffic to clients that do not read cuts them; memory goes back", async (transport) => {
    // The backlogs full at their caps (1,000 per channel, 2,000 global) first: what the publishing
    // below adds then replaces what they held, and anything left over is the clients'.
    await control("/publish", { channel: "/live", count: 2000, bytes: 16_000 });
    const before = await memory();
    const stops = await Promise.all(Array.from({ length: N }, (_, i) => nonReader(transport, `live-${transport}-${i}`, [["/live", -1]])));
    await waitFor(async () => (await subscribers())[transport] === N, "all subscribed", WAIT_MS, WAIT_EVERY_MS);
    // 16 KB messages at 200/s for 3 s: ~10 MB per client, more than its socket buffers take.
    await control("/rate", { channel: "/live", bytes: 16_000, rate: 200, seconds: 3 });
    let peak = 0;
    await waitFor(async () => {
      peak = Math.max(peak, held(await memory()));
      return (await control<{ done: boolean }>("/rate")).done;
    }, "the publishing done", WAIT_MS, WAIT_EVERY_MS);
    expect(peak - held(before)).toBeLessThan(N * PER_CLIENT + SLACK);
    // Every one of them was cut (past maxBufferedBytes), none was left to pile up.
    await waitFor(async () => (await subscribers())[transport] === 0, "the slow clients cut", WAIT_MS, WAIT_EVERY_MS);
    for (const stop of stops) stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(held(await memory()) - held(before)).toBeLessThan(8 * MB);
  });

  it(`pipelined orphans: ${N} connections × 100 queued SSE requests leave nothing behind`, async () => {
    const before = await memory();
    const conns = Array.from({ length: N }, (_, c) =>
      rawRequest(Array.from({ length: 100 }, (_, i) => `GET /message-bus/o${c}-${i}/sse?%2Forphan=-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`).join("")),
    );
    await new Promise((r) => setTimeout(r, 500));
    for (const s of conns) s.destroy();
    await waitFor(async () => (await subscribers()).sse === 0, "no SSE subscriber left", WAIT_MS, WAIT_EVERY_MS);
    expect(held(await memory()) - held(before)).toBeLessThan(8 * MB);
  });
});

describe("idle WebSockets keep nothing of their upgrade", () => {
  /**
   * Without an `authorize` hook or request handlers, an open socket needs nothing of the HTTP
   * request that opened it. A closure made while the upgrade was handled once kept the Hono
   * Context, the web Request and its Headers alive for the socket's whole life: about 11 KB of heap
   * per socket where the socket itself, `ws` included, takes about 5.
   */
  const SOCKETS = 1000;
  const PER_SOCKET_KB = 8;

  async function openIdle(n: number, tag: string): Promise<WebSocket[]> {
    const list: WebSocket[] = [];
    for (let i = 0; i < n; i++) {
      const ws = new WebSocket(`${base.replace(/^http/, "ws")}/idle-${tag}-${i}/ws`, { perMessageDeflate: false });
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      list.push(ws);
    }
    return list;
  }

  it(`${SOCKETS} idle sockets hold at most ${PER_SOCKET_KB} KB of heap each`, async () => {
    // Once first, so that code compiled on first use is not counted as the sockets'.
    for (const ws of await openIdle(100, "warm")) ws.terminate();
    await waitFor(async () => (await subscribers()).websocket === 0, "the warm-up sockets gone", WAIT_MS, WAIT_EVERY_MS);
    const before = await memory();
    const sockets = await openIdle(SOCKETS, "held");
    await waitFor(async () => (await subscribers()).websocket === SOCKETS, "every socket open", WAIT_MS, WAIT_EVERY_MS);
    const during = await memory();
    for (const ws of sockets) ws.terminate();
    const perSocketKB = (held(during) - held(before)) / SOCKETS / 1024;
    expect(perSocketKB).toBeLessThan(PER_SOCKET_KB);
  });
});

describe("idle streams and held long-polls keep only what they need", () => {
  /**
   * What an idle SSE stream or a held long-poll costs beyond node:http's own request, response and
   * socket (about 4.5 KB): its subscriber, its sink or held answer, and the listener that notices
   * the client leave. Each once kept, for its whole life, a guard closure and a socket watch with a
   * Set, a Map for its one channel, a Timeout per held poll, and (a held poll) the parsed
   * subscription and the exchange through a closure's context: 7.4–7.9 KB of heap per stream and
   * 7.7 per held poll, measured here. Then 6.8–6.9 and 6.1–6.2; and now 6.3–6.4 and 5.2, since
   * listen() keeps one close listener for all instead of a closure per connection and response, and
   * a held poll no longer passes through @hono/node-server (which keeps a close handler and its
   * Request per request: server/node/direct-poll.ts).
   */
  const CONNECTIONS = 2000;
  /** The bounds, per transport, between what the code before took and what it takes now. */
  const BOUNDS: ["sse" | "long-poll", number][] = [
    ["sse", 6.6],
    ["long-poll", 5.6],
  ];

  function openIdle(transport: "sse" | "long-poll", n: number, tag: string): Socket[] {
    return Array.from({ length: n }, (_, i) => {
      const path = `/message-bus/idle-${tag}-${i}`;
      return rawRequest(transport === "sse" ? `GET ${path}/sse?%2Fidle=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` : post(`${path}/poll`, "%2Fidle=0", "Dont-Chunk: true\r\n"));
    });
  }

  async function closeAll(list: Socket[], transport: string): Promise<void> {
    for (const s of list) s.destroy();
    await waitFor(async () => (await subscribers())[transport] === 0, `every ${transport} gone`, WAIT_MS, WAIT_EVERY_MS);
  }

  it.each(BOUNDS)(`%s: ${CONNECTIONS} idle connections hold at most %s KB of heap each`, async (transport, boundKB) => {
    // Once first, so that code compiled on first use is not counted as the connections'.
    await closeAll(openIdle(transport, 200, `warm-${transport}`), transport);
    const before = await memory();
    const list = openIdle(transport, CONNECTIONS, `held-${transport}`);
    await waitFor(async () => (await subscribers())[transport] === CONNECTIONS, `every ${transport} held`, WAIT_MS, WAIT_EVERY_MS);
    const during = await memory();
    await closeAll(list, transport);
    const perConnectionKB = (held(during) - held(before)) / CONNECTIONS / 1024;
    expect({ transport, perConnectionKB: Math.round(perConnectionKB * 100) / 100 }).toEqual({ transport, perConnectionKB: expect.toSatisfy((x: number) => x <= boundKB) });
  });
});
