/**
 * Subscribers over raw WebSocket, SSE and long-poll that record every message exactly as it arrived
 * (no dedup), so a duplicate or a gap shows. Their positions, epoch and resets are kept by the
 * client's own `Subscriptions`, so they resume and start over exactly as cometbus/client does.
 */
import { createParser } from "eventsource-parser";
import WebSocket from "ws";
import { Subscriptions } from "../../client/subscriptions.js";
import { isStatus, type Message } from "../../src/envelope.js";
import { pause } from "./wait.js";

/**
 * A dropped connection or a refused request (the store is down: 503) is retried after this long:
 * the outage suites recover within seconds, and a server that is gone is not hammered meanwhile.
 */
const RECONNECT_MS = 200;

/**
 * The server registers a long-poll before it answers anything, so this long after the request
 * went out the poll is surely held and a publish reaches it live.
 */
const POLL_HELD_MS = 100;

export interface Received {
  message_id: number;
  global_id: number;
  data: unknown;
}

/** A reset this subscriber honoured: the channels it started over on, and the epoch it then held. */
export interface Reset {
  channels: string[];
  epoch: string;
}

const noop = () => {};

/**
 * One subscriber: what it got per channel in the current epoch, in arrival order, what it got in
 * earlier epochs, and the resets it was told about.
 */
export abstract class RawSubscriber {
  readonly received = new Map<string, Received[]>();
  /** channel → what was received in earlier epochs, one list per epoch. */
  readonly earlier = new Map<string, Received[][]>();
  /**
   * channel → the position each of `earlier`'s lists began after: 0 for the subscription and an
   * epoch's reset; where the server said the channel stands for a reset within one epoch (a
   * position past the end, as a promoted replica that missed writes shows before the new epoch).
   */
  readonly earlierFrom = new Map<string, number[]>();
  /** channel → the position the current `received` list began after. */
  private readonly receivedFrom = new Map<string, number>();
  readonly resets: Reset[] = [];
  /** Messages for channels this subscriber never asked for (a failure, reported by the checks). */
  readonly strays: Message[] = [];
  reconnects = 0;
  protected stopped = false;
  private readonly state = new Subscriptions();

  constructor(
    readonly name: string,
    readonly base: string,
    readonly channels: string[],
  ) {
    for (const ch of channels) {
      this.received.set(ch, []);
      this.earlier.set(ch, []);
      this.earlierFrom.set(ch, []);
      this.receivedFrom.set(ch, 0);
      this.state.add(ch, noop, 0);
    }
  }

  get epoch(): string {
    return this.state.epoch;
  }

  set epoch(epoch: string) {
    this.state.epoch = epoch;
  }

  /** The subscription to send: every channel's position and the epoch they belong to. */
  positions(): Record<string, number | string> {
    return this.state.body();
  }

  /**
   * One batch as it arrived on a connection that asked with `sentEpoch`. The client's batch rule
   * decides resets, positions and the epoch; every message is recorded, the ones it would drop too.
   */
  protected take(messages: Message[], sentEpoch: string): void {
    const reset: string[] = [];
    const due = this.state.take(messages, sentEpoch, (ch) => {
      reset.push(ch);
      const list = this.received.get(ch)!;
      if (list.length) {
        this.earlier.get(ch)!.push(list);
        this.earlierFrom.get(ch)!.push(this.receivedFrom.get(ch)!);
      }
      this.received.set(ch, []);
    });
    for (const ch of reset) {
      // Where the reset put the channel: the position the server told, when this batch brought
      // nothing of it (a reset past the end: nothing to read yet); else its messages run from 1.
      this.receivedFrom.set(ch, due.some((m) => m.channel === ch) ? 0 : (this.state.positions.get(ch) ?? 0));
    }
    if (reset.length) this.resets.push({ channels: reset, epoch: this.state.epoch });
    for (const m of messages) {
      if (isStatus(m)) continue;
      const list = this.received.get(m.channel);
      // Kept, not thrown: a throw here would only look like a dropped connection on SSE and long-poll.
      if (!list) this.strays.push(m);
      else list.push({ message_id: m.message_id, global_id: m.global_id, data: m.data });
    }
  }

  count(): number {
    let n = 0;
    for (const list of this.received.values()) n += list.length;
    return n;
  }

  abstract start(): Promise<void>;
  abstract stop(): void;

  /** Runs a reconnecting loop, and resolves once it says it is subscribed (`first`) or gave up trying once. */
  protected runLoop(loop: (first: () => void) => Promise<void>): Promise<void> {
    let first!: () => void;
    const ready = new Promise<void>((r) => (first = r));
    void loop(first);
    return ready;
  }
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
      let sentEpoch: string | undefined;
      ws.on("message", (raw) => {
        const batch = JSON.parse(String(raw)) as Message[];
        if (sentEpoch === undefined) {
          // The welcome names the server's epoch, but the subscription carries the epoch our positions
          // belong to (as the client does): the answer to it, an array maybe empty, brings the new one.
          sentEpoch = this.epoch;
          ws.send(JSON.stringify({ subscribe: this.positions() }));
          return;
        }
        this.take(batch, sentEpoch);
        resolve();
      });
      ws.on("error", () => {});
      ws.on("close", () => {
        resolve();
        if (this.stopped) return;
        this.reconnects++;
        void pause(RECONNECT_MS).then(() => {
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

  start(): Promise<void> {
    return this.runLoop((first) => this.loop(first));
  }

  private async loop(first: () => void): Promise<void> {
    while (!this.stopped) {
      const ac = (this.ac = new AbortController());
      try {
        const sentEpoch = this.epoch;
        const query = new URLSearchParams(Object.entries(this.positions()).map(([k, v]) => [k, String(v)]));
        const res = await fetch(`${this.base}/${this.name}/sse?${query}`, { signal: ac.signal });
        if (res.status !== 200) throw new Error(`sse ${res.status}`);
        const parser = createParser({ onEvent: (e) => this.take([JSON.parse(e.data) as Message], sentEpoch) });
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
      await pause(RECONNECT_MS);
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
    // A real client remembers the epoch from before; this one starts out knowing it.
    this.epoch = ((await (await fetch(`${this.base}/stats`)).json()) as { epoch: string }).epoch;
    await this.runLoop((first) => this.loop(first));
  }

  private async loop(first: () => void): Promise<void> {
    while (!this.stopped) {
      const ac = (this.ac = new AbortController());
      setTimeout(first, POLL_HELD_MS);
      try {
        const sentEpoch = this.epoch;
        const res = await fetch(`${this.base}/${this.name}/poll`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "Dont-Chunk": "true" },
          body: JSON.stringify({ ...this.positions(), __seq: ++this.seq }),
          signal: ac.signal,
        });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`poll ${res.status}: ${text}`);
        this.take(JSON.parse(text) as Message[], sentEpoch);
      } catch {
        if (this.stopped) return;
        this.reconnects++;
        await pause(RECONNECT_MS);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.ac?.abort();
  }
}
