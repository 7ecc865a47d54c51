/**
 * Several `cometbus serve` processes on one shared store, with raw subscribers on each of them: the
 * harness of the multi-process suites.
 */
import { type ServerProcess, spawnServer } from "./processes.js";
import { type PublishRun, publishAll } from "./publisher.js";
import { LongPollSubscriber, type RawSubscriber, SseSubscriber, WsSubscriber } from "./raw-subscribers.js";

/**
 * Three: a message published on one process must reach two that did not publish it, and ids that
 * three processes assign at once interleave on every channel. More would only slow the suite down.
 */
export const PROCESSES = 3;

/** Channels of the run: enough that every process publishes to all of them within a few messages. */
export const CHANNEL_COUNT = 10;

/**
 * Every process's WebSocket subscriber takes every channel, its SSE subscriber the first seven and
 * its long-poll subscriber the last seven: each channel has at least two transports on each process,
 * the middle four all three, and each transport lacks some channels (so a message on the wrong
 * channel shows as a stray).
 */
export const SSE_CHANNELS = 7;
export const LONG_POLL_CHANNELS = 7;

/** The subscribers of one process, in this order: WebSocket, SSE, long-poll. */
export async function subscribeAll(server: ServerProcess, index: number, channels: string[]): Promise<RawSubscriber[]> {
  const subs = [
    new WsSubscriber(`ws-${index}`, server.url, channels),
    new SseSubscriber(`sse-${index}`, server.url, channels.slice(0, SSE_CHANNELS)),
    new LongPollSubscriber(`lp-${index}`, server.url, channels.slice(channels.length - LONG_POLL_CHANNELS)),
  ];
  await Promise.all(subs.map((s) => s.start()));
  return subs;
}

/** N server processes on one backend with their subscribers; `stop()` ends all of it. */
export class Cluster {
  servers: ServerProcess[] = [];
  subs: RawSubscriber[] = [];
  readonly channels = Array.from({ length: CHANNEL_COUNT }, (_, i) => `/mp/${i}`);

  constructor(
    readonly backend: string,
    readonly token = "mp-token",
  ) {}

  async start(processes = PROCESSES): Promise<void> {
    // Started one by one: the first creates the store's schema, the others find it.
    for (let i = 0; i < processes; i++) this.servers.push(await spawnServer(this.backend, this.token));
    for (const [i, s] of this.servers.entries()) this.subs.push(...(await subscribeAll(s, i, this.channels)));
  }

  /** Every process publishes `each` messages, `concurrency` at a time. */
  async publish(each: number, concurrency: number): Promise<PublishRun> {
    const runs = await Promise.all(this.servers.map((s, p) => publishAll(s.url, this.token, p, this.channels, each, concurrency)));
    return { acks: runs.flatMap((r) => r.acks), rejections: runs.flatMap((r) => r.rejections) };
  }

  /** Every process publishes until `stop()` says so; the acks so far are readable meanwhile. */
  publishUntil(stop: () => boolean, concurrency: number, delayMs: number): PublishRun & { done: Promise<unknown> } {
    const sink: PublishRun = { acks: [], rejections: [] };
    const done = Promise.all(
      this.servers.map((s, p) => publishAll(s.url, this.token, p, this.channels, 0, concurrency, { until: stop, delayMs, sink })),
    );
    return { ...sink, done };
  }

  async stop(): Promise<void> {
    for (const s of this.subs) s.stop();
    await Promise.all(this.servers.map((s) => s.stop()));
  }

  crashed(): string[] {
    return this.servers.filter((s) => !s.alive()).map((s) => s.output());
  }
}
