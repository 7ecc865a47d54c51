import { encodeStatus, statusMessage, type StatusData } from "../../src/envelope.js";
import { type Limits, pageBytes } from "../../src/limits.js";
import type { Subscription } from "../../src/subscription.js";
import { parseSseId, SSE_HEARTBEAT, SSE_PREAMBLE, sseData, sseEvent, sseId, sseRetry } from "../../src/wire.js";
import { BatchMemo } from "../core/batch-memo.js";
import type { Outgoing } from "../core/outgoing.js";
import { SharedText } from "../core/shared-text.js";
import { type CatchUpPage, type CatchUpWriter, Subscriber } from "../core/subscriber.js";
import type { Identity } from "../core/targeting.js";
import { NO_CACHE, reportLate, spreadMoved } from "./common.js";
import type { TransportContext } from "./context.js";
import type { Exchange, Sink } from "./io.js";

const singles = new BatchMemo<SharedText>();

// Only what a stream needs: message_bus's Pragma and Expires are for HTTP/1.0 caches of
// poll answers, and Node adds Connection itself. Each stream keeps its head as a string for life.
const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": NO_CACHE["Cache-Control"],
  "X-Accel-Buffering": "no",
  "X-Content-Type-Options": "nosniff",
};

/**
 * One stream (docs/protocol.md#64-server-sent-events); each event's id carries the epoch and every channel's position (in subscription
 * order), so a browser's EventSource resumes exactly with Last-Event-ID and the same URL.
 */
class SseSubscriber extends Subscriber {
  readonly kind = "sse";
  sink!: Sink;
  epoch = "";
  /** Positions as of the last event written, in subscription order. */
  private sent: number[];
  /** channel → place in `sent`; a one-channel stream (the common case) needs none. */
  private index: Map<string, number> | null = null;

  /** The spread hint this client last heard; null until the stream's head told it. */
  toldSpread: number | null = null;

  constructor(
    // Kept for its spread hint: a closure asking it took a function and a context per stream.
    private readonly ctx: TransportContext,
    who: Identity,
    channels: string[],
    private readonly limits: Pick<Limits, "maxBufferedBytes" | "maxStallMs">,
  ) {
    super(ctx.hub, who);
    if (channels.length > 1) this.index = new Map(channels.map((ch, i) => [ch, i]));
    this.channel0 = channels[0];
    this.sent = channels.map(() => 0);
  }

  private readonly channel0: string | undefined;

  private slot(channel: string): number {
    return this.index ? this.index.get(channel)! : 0;
  }

  start(positions: Map<string, number>): void {
    for (const [ch, pos] of positions) this.sent[this.slot(ch)] = pos;
  }

  messageEvent(o: Outgoing): string {
    this.sent[this.slot(o.channel)] = o.id;
    return sseEvent(sseId(this.epoch, this.sent), o.json);
  }

  statusEvent(status: StatusData): string {
    const slots: Iterable<[string, number]> = this.index ?? (this.channel0 === undefined ? [] : [[this.channel0, 0]]);
    for (const [ch, i] of slots) {
      const p = status[ch];
      if (typeof p === "number") this.sent[i] = p;
    }
    return sseEvent(sseId(this.epoch, this.sent), JSON.stringify(statusMessage(status)));
  }

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed) return;
    if (status?.__epoch) this.epoch = status.__epoch;
    if (!status && batch.length && this.sent.length === 1) {
      // One channel: every such stream's event ids agree, so the events are encoded once for all.
      const epoch = this.epoch;
      this.sent[0] = batch[batch.length - 1].id;
      this.sink.writeShared(batch.length === 1 ? batch[0].sseSingle(epoch) : singles.get(batch, epoch, (b) => SharedText.concat(b.map((o) => o.sseSingle(epoch)))));
      this.checkBuffered();
      return;
    }
    let out = status ? this.statusEvent(status) : "";
    for (const o of batch) out += this.messageEvent(o);
    this.write(out);
  }

  write(out: string): void {
    this.sink.write(out);
    this.checkBuffered();
  }

  /** A consumer that cannot keep up is cut; it resumes from its position, from the backlog. */
  private checkBuffered(): void {
    if (this.sink.buffered > this.limits.maxBufferedBytes) this.slowCut();
  }

  /**
   * How the catch-up is written, after the preamble that went out at once: the epoch and where every
   * channel starts; then each page's events (a status first when channels were found reset), each
   * page once the client took the one before; then where channels stand after entries it may not see.
   */
  writer(spreadMs: number): CatchUpWriter {
    return {
      begin: (cu) => {
        this.epoch = cu.epoch;
        this.start(cu.start);
      },
      page: (p) => this.page(p, spreadMs),
    };
  }

  private async page({ cu, messages, reset, first, last }: CatchUpPage, spreadMs: number): Promise<void> {
    let out = "";
    if (first) {
      this.toldSpread = spreadMs;
      const head: StatusData = { __epoch: cu.epoch, __spread: spreadMs };
      if (reset.length) head.__reset = reset;
      for (const [ch, p] of cu.start) head[ch] = p;
      out = this.statusEvent(head);
    } else if (reset.length) out = this.statusEvent({ __reset: reset });
    for (const o of messages) out += this.messageEvent(o);
    if (last) {
      const tail: StatusData = {};
      let passedOver = false;
      for (const [ch, p] of cu.positions) {
        if (p !== this.sent[this.slot(ch)]) {
          tail[ch] = p;
          passedOver = true;
        }
      }
      if (passedOver) out += this.statusEvent(tail);
    }
    if (!out) return;
    // The next page waits until the client has taken this one: a slow client holds one page, not the backlog.
    if (last) this.write(out);
    else if (!(await this.sink.writeAndWait(out, this.limits.maxStallMs))) this.slowCut();
  }

  override heartbeat(): void {
    // The hub's timer also ticks while the backlog is read, before there is a stream: that threw.
    if (!this.closed && this.sink) this.sink.write(SSE_HEARTBEAT);
  }

  override retell(): void {
    // Not before the head told the first hint (the catch-up may still be read).
    if (this.closed || !this.sink || this.toldSpread === null) return;
    const spread = this.ctx.spreadMs();
    if (!spreadMoved(this.toldSpread, spread)) return;
    // Without an id, so an EventSource's Last-Event-ID stays the last message's.
    this.toldSpread = spread;
    this.sink.write(sseData(encodeStatus({ __spread: spread })));
  }

  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.leave();
  }

  private slowCut(): void {
    if (this.closed) return;
    this.tooSlow();
    this.cut();
  }

  /** Cut at once (too slow, stalled): its buffers are freed, and it resumes from its event ids. */
  cut(): void {
    this.finish();
    this.sink?.destroy();
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    this.sink?.end();
  }

  /**
   * Told to go: a plain EventSource is given a random reconnection time within the hint (its own
   * `retry`), our client the hint itself; both without an event id, so the last one stands.
   */
  move(hintMs: number): void {
    if (this.closed) return;
    this.finish();
    this.sink?.end(goElsewhere(hintMs), true);
  }
}

function goElsewhere(hintMs: number): string {
  return sseRetry(Math.random() * hintMs) + sseData(encodeStatus({ __drain: hintMs }));
}

/** `GET|POST {base}/{clientId}/sse`. */
export async function handleSse(ctx: TransportContext, x: Exchange, sub: Subscription, who: Identity): Promise<Response> {
  const channels = [...sub.positions.keys()];
  // A browser's EventSource reconnecting: Last-Event-ID holds the epoch and positions of this URL's channels.
  const resumed = parseSseId(x.header("last-event-id"), channels.length);
  // A loop, not a closure: a closure here would share this function's context with the stream's
  // close callback and keep the whole parsed subscription alive for the stream's lifetime.
  if (resumed) {
    for (let i = 0; i < channels.length; i++) sub.positions.set(channels[i], resumed.positions[i]);
    sub.epoch = resumed.epoch;
  }

  const s = new SseSubscriber(ctx, who, channels, ctx.limits);
  // Pipelined behind another response on this connection: subscribe nothing until it is this one's turn.
  if (!(await x.turn())) return x.gone();
  // The head and the preamble go out before any store read: a client that sees these bytes knows
  // its stream is not held back by a proxy, only perhaps by a busy server (docs/protocol.md#64-server-sent-events).
  const { sink, response } = x.stream(SSE_HEADERS, s);
  s.sink = sink;
  const drain = ctx.drainHint();
  if (drain !== null) {
    sink.end(SSE_PREAMBLE + goElsewhere(drain), true);
    return response;
  }
  sink.write(SSE_PREAMBLE);
  // A store read failing now ends the stream; the client (an EventSource too) retries from its position.
  s.load(ctx.backend, sub.positions, sub.epoch ?? "", s.writer(ctx.spreadMs()), { pageBytes: pageBytes(ctx.limits) }).catch((e) => {
    reportLate(ctx, e);
    s.cut();
  });
  return response;
}
