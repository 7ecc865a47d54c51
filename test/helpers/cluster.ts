/**
 * Several `cometbus serve` processes on one shared store, subscribers on each of them over raw
 * WebSocket, SSE and long-poll, and HTTP publishers: the harness of the multi-process suites.
 * Subscribers record every message exactly as it arrived (no dedup), so a duplicate or a gap shows.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { createParser } from "eventsource-parser";
import { expect } from "vitest";
import WebSocket from "ws";
import type { Message } from "../../src/envelope.js";

const CLI = fileURLToPath(new URL("../../dist/server/cli.js", import.meta.url));
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Still running (never crashed). */
  alive(): boolean;
  stop(): Promise<void>;
}

export async function spawnServer(backend: string, token: string): Promise<ServerProcess> {
  // A build running next to the tests (rm -rf dist, then tsc) makes dist/ vanish for a few seconds.
  for (let i = 0; i < 60 && !existsSync(CLI); i++) await pause(500);
  if (!existsSync(CLI)) throw new Error("dist/server/cli.js is missing: run npm run build (npm test does)");
  const child = spawn(process.execPath, [CLI, "serve", "--port", "0", "--backend", backend, "--publish-token", token], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PORT: "" },
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const look = () => {
      const m = /listening on (http:\/\/\S+)\n/.exec(out);
      if (m) resolve(m[1]);
    };
    child.stdout!.on("data", look);
    void exited.then(() => reject(new Error(`cometbus serve exited before listening: ${out}`)));
  });
  return {
    url,
    child,
    output: () => out,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Received {
  message_id: number;
  global_id: number;
  data: unknown;
}

/**
 * One subscriber: what it got per channel in the current epoch, in arrival order, what it got in
 * earlier epochs, and the resets it was told about. It keeps its positions and epoch the way a real
 * client does (and sends `__epoch` back), so after a store lost everything it starts over cleanly.
 */
export abstract class RawSubscriber {
  readonly received = new Map<string, Received[]>();
  /** channel → what was received in earlier epochs, one list per epoch. */
  readonly earlier = new Map<string, Received[][]>();
  readonly resets: unknown[] = [];
  epoch = "";
  reconnects = 0;
  protected stopped = false;

  constructor(
    readonly name: string,
    readonly base: string,
    readonly channels: string[],
  ) {
    for (const ch of channels) {
      this.received.set(ch, []);
      this.earlier.set(ch, []);
    }
  }

  /** Where each channel stands: the last message id received (0 before any), and the epoch. */
  positions(): Record<string, number | string> {
    const p: Record<string, number | string> = {};
    for (const [ch, list] of this.received) p[ch] = list.length ? list[list.length - 1].message_id : 0;
    if (this.epoch) p.__epoch = this.epoch;
    return p;
  }

  /**
   * The batch rule of cometbus's client: resets first (the messages of a batch that says "reset"
   * belong to the new start), then the messages. A reset naming the epoch this subscriber already
   * holds is a repeat (another connection brought it first) and changes nothing.
   */
  protected take(messages: Message[]): void {
    for (const m of messages) {
      if (m.channel !== "/__status") continue;
      const d = m.data as Record<string, unknown>;
      const epoch = typeof d.__epoch === "string" ? d.__epoch : undefined;
      if (Array.isArray(d.__reset) && !(epoch !== undefined && epoch === this.epoch)) {
        this.resets.push(d);
        for (const ch of d.__reset as string[]) {
          const list = this.received.get(ch);
          if (list?.length) this.earlier.get(ch)!.push(list);
          if (list) this.received.set(ch, []);
        }
      }
      if (epoch !== undefined) this.epoch = epoch;
    }
    for (const m of messages) {
      if (m.channel === "/__status") continue;
      const list = this.received.get(m.channel);
      if (!list) throw new Error(`${this.name} got a message for ${m.channel}, not subscribed`);
      list.push({ message_id: m.message_id, global_id: m.global_id, data: m.data });
    }
  }

  count(): number {
    let n = 0;
    for (const list of this.received.values()) n += list.length;
    return n;
  }

  abstract start(): Promise<void>;
  abstract stop(): void;
}

/** WebSocket: subscribe frame with positions; reconnects with its positions if the socket closes. */
export class WsSubscriber extends RawSubscriber {
  private ws?: WebSocket;

  async start(): Promise<void> {
    await this.open();
  }

  private open(): Promise<void> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`${this.base.replace(/^http/, "ws")}/${this.name}/ws`);
      this.ws = ws;
      let subscribed = false;
      ws.on("message", (raw) => {
        const batch = JSON.parse(String(raw)) as Message[];
        if (!subscribed) {
          // The welcome (the epoch); the answer to the subscription comes next (an array, maybe empty).
          subscribed = true;
          this.take(batch);
          ws.send(JSON.stringify({ subscribe: this.positions() }));
          return;
        }
        this.take(batch);
        resolve();
      });
      ws.on("error", () => {});
      ws.on("close", () => {
        resolve();
        if (this.stopped) return;
        this.reconnects++;
        void pause(200).then(() => {
          if (!this.stopped) void this.open();
        });
      });
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

/** SSE over fetch with eventsource-parser; reconnects with its positions when the stream ends. */
export class SseSubscriber extends RawSubscriber {
  private ac?: AbortController;

  async start(): Promise<void> {
    let first!: () => void;
    const ready = new Promise<void>((r) => (first = r));
    void this.loop(first);
    await ready;
  }

  private async loop(first: () => void): Promise<void> {
    while (!this.stopped) {
      const ac = (this.ac = new AbortController());
      try {
        const query = new URLSearchParams(Object.entries(this.positions()).map(([k, v]) => [k, String(v)]));
        const res = await fetch(`${this.base}/${this.name}/sse?${query}`, { signal: ac.signal });
        if (res.status !== 200) throw new Error(`sse ${res.status}`);
        const parser = createParser({ onEvent: (e) => this.take([JSON.parse(e.data) as Message]) });
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
          first();
        }
      } catch {
        // Aborted by stop(), or the server answered 503 while the store is down: retry.
      }
      first();
      if (this.stopped) return;
      this.reconnects++;
      await pause(200);
    }
  }

  stop(): void {
    this.stopped = true;
    this.ac?.abort();
  }
}

/** Long-poll (`Dont-Chunk`, JSON body, `__seq`), one request after another; retries after errors. */
export class LongPollSubscriber extends RawSubscriber {
  private ac?: AbortController;
  private seq = 0;

  async start(): Promise<void> {
    // A long-poll is told the epoch only when it names one; a real client remembers it from before.
    this.epoch = ((await (await fetch(`${this.base}/stats`)).json()) as { epoch: string }).epoch;
    let first!: () => void;
    const ready = new Promise<void>((r) => (first = r));
    void this.loop(first);
    await ready;
  }

  private async loop(first: () => void): Promise<void> {
    while (!this.stopped) {
      const ac = (this.ac = new AbortController());
      // The server registers the poll before answering; a tick later it is surely held.
      setTimeout(first, 100);
      try {
        const res = await fetch(`${this.base}/${this.name}/poll`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Dont-Chunk": "true" },
          body: JSON.stringify({ ...this.positions(), __seq: ++this.seq }),
          signal: ac.signal,
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`poll ${res.status}: ${text}`);
        this.take(JSON.parse(text) as Message[]);
      } catch {
        if (this.stopped) return;
        this.reconnects++;
        await pause(200);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.ac?.abort();
  }
}

export interface Ack {
  channel: string;
  data: { p: number; i: number };
  global_id: number;
  message_id: number;
}

export interface Rejection {
  status: number;
  error: string;
}

/**
 * Publishes `count` messages over HTTP to one process, `concurrency` at a time, channels in turn;
 * `gate` lets a test pause publishing. Returns what was acknowledged and what was refused.
 */
export async function publishAll(
  server: ServerProcess,
  token: string,
  p: number,
  channels: string[],
  count: number,
  concurrency: number,
  opts: { until?: () => boolean; delayMs?: number; sink?: { acks: Ack[]; rejections: Rejection[] } } = {},
): Promise<{ acks: Ack[]; rejections: Rejection[] }> {
  // A shared sink lets a test watch the acks of a run still going.
  const { acks, rejections } = opts.sink ?? { acks: [] as Ack[], rejections: [] as Rejection[] };
  let next = 0;
  const worker = async () => {
    for (;;) {
      if (opts.until ? opts.until() : next >= count) return;
      const i = next++;
      const channel = channels[(i + p) % channels.length];
      const data = { p, i };
      try {
        const res = await postJson(`${server.url}/publish`, token, JSON.stringify({ channel, data }));
        const body = JSON.parse(res.text) as { global_id: number; message_id: number; error?: string };
        if (res.status === 200) acks.push({ channel, data, global_id: body.global_id, message_id: body.message_id });
        else rejections.push({ status: res.status, error: body.error ?? "" });
      } catch (e) {
        const cause = (e as { cause?: unknown }).cause;
        rejections.push({ status: 0, error: `${e}${cause ? ` (${cause})` : ""}` });
      }
      if (opts.delayMs) await pause(opts.delayMs);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { acks, rejections };
}

/**
 * One POST on a connection of its own. Reusing keep-alive connections races the server closing them
 * when idle (5 s), and on a loaded machine an event loop late by a second loses that race: the
 * publish fails with "other side closed" though the server never saw it. A fresh connection per
 * publish cannot hit that, so every failure a test sees is the server's.
 */
function postJson(url: string, token: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: "POST",
        agent: false,
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, "Content-Length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Waits until `ok()` holds, checking every 50 ms; a safety net, never a timing assertion. */
export async function waitUntil(ok: () => boolean | Promise<boolean>, what: () => string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what()}`);
    await pause(50);
  }
}

/**
 * What every subscriber got, checked against what publishers were told: per channel, message ids
 * 1, 2, 3, … in order and each once; the same messages (ids, global ids, data) on every process
 * and transport; every acknowledged message among them. `exact`: nothing but acknowledged ones
 * (no outage, so no publish of unknown outcome).
 */
export function deliveryProblems(subs: RawSubscriber[], acks: Ack[], exact: boolean): string[] {
  const problems: string[] = [];
  const acked = new Map<string, Ack[]>();
  for (const a of acks) {
    if (!acked.has(a.channel)) acked.set(a.channel, []);
    acked.get(a.channel)!.push(a);
  }
  const reference = new Map<string, { sub: string; list: Received[] }>();
  for (const s of subs) {
    for (const [ch, got] of s.received) {
      const where = `${s.name} ${ch}`;
      const holes = got.findIndex((m, i) => m.message_id !== i + 1);
      if (holes >= 0) problems.push(`${where}: message #${holes} has id ${got[holes].message_id} (duplicate, gap or out of order)`);
      for (const a of acked.get(ch) ?? []) {
        const m = got[a.message_id - 1];
        if (!m || m.global_id !== a.global_id || JSON.stringify(m.data) !== JSON.stringify(a.data)) {
          problems.push(`${where}: acknowledged ${JSON.stringify(a)} not delivered as such (got ${JSON.stringify(m)})`);
          break;
        }
      }
      if (exact && got.length !== (acked.get(ch)?.length ?? 0)) problems.push(`${where}: ${got.length} messages, ${acked.get(ch)?.length} acknowledged`);
      const ref = reference.get(ch);
      if (!ref) reference.set(ch, { sub: s.name, list: got });
      else if (JSON.stringify(ref.list) !== JSON.stringify(got)) problems.push(`${where}: differs from ${ref.sub}`);
    }
  }
  return problems;
}

/** Whether every subscriber holds every acknowledged message of its channels. */
export function allDelivered(subs: RawSubscriber[], acks: Ack[]): boolean {
  const last = new Map<string, number>();
  for (const a of acks) last.set(a.channel, Math.max(last.get(a.channel) ?? 0, a.message_id));
  return subs.every((s) => [...s.received].every(([ch, got]) => got.length >= (last.get(ch) ?? 0)));
}

/** The subscribers of one process: WebSocket on every channel, SSE on the first 7, long-poll on the last 7. */
export async function subscribeAll(server: ServerProcess, index: number, channels: string[]): Promise<RawSubscriber[]> {
  const subs = [
    new WsSubscriber(`ws-${index}`, server.url, channels),
    new SseSubscriber(`sse-${index}`, server.url, channels.slice(0, 7)),
    new LongPollSubscriber(`lp-${index}`, server.url, channels.slice(3)),
  ];
  await Promise.all(subs.map((s) => s.start()));
  return subs;
}

/** N server processes on one backend with their subscribers; `stop()` ends all of it. */
export class Cluster {
  servers: ServerProcess[] = [];
  subs: RawSubscriber[] = [];
  readonly channels = Array.from({ length: 10 }, (_, i) => `/mp/${i}`);

  constructor(
    readonly backend: string,
    readonly token = "mp-token",
  ) {}

  async start(processes: number): Promise<void> {
    // Started one by one: the first creates the store's schema, the others find it.
    for (let i = 0; i < processes; i++) this.servers.push(await spawnServer(this.backend, this.token));
    for (const [i, s] of this.servers.entries()) this.subs.push(...(await subscribeAll(s, i, this.channels)));
  }

  /** Every process publishes `each` messages, `concurrency` at a time. */
  async publish(each: number, concurrency: number): Promise<{ acks: Ack[]; rejections: Rejection[] }> {
    const runs = await Promise.all(this.servers.map((s, p) => publishAll(s, this.token, p, this.channels, each, concurrency)));
    return { acks: runs.flatMap((r) => r.acks), rejections: runs.flatMap((r) => r.rejections) };
  }

  /** Every process publishes until `stop()` says so; the acks so far are readable meanwhile. */
  publishUntil(stop: () => boolean, concurrency: number, delayMs: number) {
    const acks: Ack[] = [];
    const rejections: Rejection[] = [];
    const done = Promise.all(
      this.servers.map((s, p) => publishAll(s, this.token, p, this.channels, 0, concurrency, { until: stop, delayMs, sink: { acks, rejections } })),
    );
    return { acks, rejections, done };
  }

  async stop(): Promise<void> {
    for (const s of this.subs) s.stop();
    await Promise.all(this.servers.map((s) => s.stop()));
  }

  crashed(): string[] {
    return this.servers.filter((s) => !s.alive()).map((s) => s.output());
  }
}

/**
 * The multi-process run both backends' suites make: 3,000 messages from publishers in every process
 * (1,000 each, 8 at a time) to 10 channels; every channel's ids 1..300 and the global ids 1..3000
 * acknowledged, and every subscriber gets every message of its channels once, in order, same ids.
 */
export async function publishAndVerify(cluster: Cluster): Promise<void> {
  const { acks, rejections } = await cluster.publish(1000, 8);
  expect(rejections).toEqual([]);
  expect(acks).toHaveLength(3000);
  for (const ch of cluster.channels) {
    const ids = acks.filter((a) => a.channel === ch).map((a) => a.message_id).sort((x, y) => x - y);
    expect(ids).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  }
  expect(acks.map((a) => a.global_id).sort((x, y) => x - y)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
  const subs = cluster.subs;
  await waitUntil(() => allDelivered(subs, acks), () => subs.map((s) => `${s.name}=${s.count()}`).join(" "));
  await new Promise((r) => setTimeout(r, 200)); // anything extra (a duplicate) would show up now
  expect(deliveryProblems(subs, acks, true)).toEqual([]);
  expect(subs.map((s) => s.count())).toEqual([3000, 2100, 2100, 3000, 2100, 2100, 3000, 2100, 2100]);
  expect(subs.flatMap((s) => s.resets)).toEqual([]);
  expect(cluster.crashed()).toEqual([]);
}

/**
 * After an outage of the shared store: every publish refused meanwhile was a 503 naming the store,
 * and every acknowledged message reached every subscriber of its channel once, in order, with no
 * reset and no crashed process.
 */
export async function verifyAfterOutage(
  cluster: Cluster,
  run: { acks: Ack[]; rejections: Rejection[] },
  store: "Redis" | "PostgreSQL",
): Promise<void> {
  for (const r of run.rejections) {
    expect(r.status).toBe(503);
    expect(r.error).toMatch(new RegExp(`^cometbus: ${store} is unavailable, message not published: `));
  }
  const subs = cluster.subs;
  await waitUntil(() => allDelivered(subs, run.acks), () => subs.map((s) => `${s.name}=${s.count()}`).join(" "));
  await new Promise((r) => setTimeout(r, 200)); // anything extra (a duplicate) would show up now
  expect(deliveryProblems(subs, run.acks, false)).toEqual([]);
  expect(subs.flatMap((s) => s.resets)).toEqual([]);
  expect(cluster.crashed()).toEqual([]);
}
