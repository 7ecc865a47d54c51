import type { StatusData } from "../../src/envelope.js";
import { pageBytes } from "../../src/limits.js";
import type { Subscription } from "../../src/subscription.js";
import { encodeChunk } from "../../src/wire.js";
import { CatchUp } from "../core/catch-up.js";
import type { Outgoing } from "../core/outgoing.js";
import { type Held, HoldQueue } from "../core/hold-queue.js";
import { Subscriber, type CatchUpPage, type CatchUpWriter } from "../core/subscriber.js";
import type { Identity } from "../core/targeting.js";
import { batchJson, beginStream, CHUNKED_TYPE, NO_CACHE, pageStatus, reportLate } from "./common.js";
import type { HeldPollSlot, TransportContext } from "./context.js";
import type { Exchange, LaterAnswer, Sink } from "./io.js";

/**
 * The slot a held poll takes for message_bus's `__seq` rule (a newer long-poll replaces an older
 * one). Scoped to who is asking: someone else who learnt a client id must not be able to answer, or
 * outbid with a huge `__seq`, the polls of that client.
 */
export function pollSlot(who: Identity): string {
  return JSON.stringify([who.clientId, who.userId ?? null, who.siteId ?? null]);
}

/** One queue per hold time, so that ten thousand held polls share one timer (hold-queue.ts). */
const holdQueues = new Map<number, HoldQueue>();

function holdQueue(ms: number): HoldQueue {
  let q = holdQueues.get(ms);
  if (!q) holdQueues.set(ms, (q = new HoldQueue(ms)));
  return q;
}

/** A held long-poll or chunked stream; message_bus's `__seq` lets a newer one replace an older one. */
abstract class HeldPoll extends Subscriber implements Held {
  heldPrev: Held | null = null;
  heldNext: Held | null = null;
  heldUntil = 0;
  private queue?: HoldQueue;

  constructor(
    ctx: TransportContext,
    who: Identity,
    readonly seq: number,
    readonly slot: string,
  ) {
    super(ctx.hub, who);
    this.polls = ctx.longPolls;
  }

  private readonly polls: Map<string, HeldPollSlot>;

  hold(ms: number): void {
    if (this.closed) return;
    this.queue = holdQueue(ms);
    this.queue.add(this);
  }

  expire(): void {
    this.close();
  }

  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue?.remove(this);
    this.leave();
    if (this.polls.get(this.slot) === this) this.polls.delete(this.slot);
  }
}

class LongPoll extends HeldPoll {
  readonly kind = "long-poll";
  /** Set once the poll is held; an answer due before that waits in `answered` for handlePoll. */
  later?: LaterAnswer;
  answered?: string;

  send(batch: Outgoing[], status: StatusData | null): void {
    this.respond(batchJson(batch, status));
  }

  close(): void {
    this.respond("[]");
  }

  move(hintMs: number): void {
    this.respond(batchJson([], { __drain: hintMs }), true);
  }

  respond(body: string, close = false): void {
    if (this.closed) return;
    this.finish();
    if (this.later) this.later.answer(body, close);
    else this.answered = body;
  }

  /** The catch-up's one page: something due (or to be said) is answered at once, the rest with the next poll. */
  writer(): CatchUpWriter {
    return {
      page: ({ cu, messages }) => {
        const status = cu.status();
        if (messages.length || status) this.send(messages, status);
      },
    };
  }
}

class ChunkedPoll extends HeldPoll {
  readonly kind = "chunked";
  sink?: Sink;

  constructor(
    ctx: TransportContext,
    who: Identity,
    seq: number,
    slot: string,
    private readonly limits: { maxBufferedBytes: number; maxStallMs: number },
  ) {
    super(ctx, who, seq, slot);
  }

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed || !this.sink) return;
    this.sink.write(batch.length === 1 && !status ? batch[0].chunk : encodeChunk(batchJson(batch, status)));
    // A client that cannot keep up is cut; it resumes from its positions, from the backlog.
    if (this.sink.buffered > this.limits.maxBufferedBytes) this.slowCut();
  }

  /** One catch-up page as one chunk, each once the client has taken the one before. */
  async page(p: CatchUpPage): Promise<void> {
    const status = pageStatus(p);
    if (!this.sink || !(p.first || p.messages.length || status)) return;
    const chunk = encodeChunk(p.messages.length || status ? batchJson(p.messages, status) : "[]");
    if (p.last) this.sink.write(chunk);
    else if (!(await this.sink.writeAndWait(chunk, this.limits.maxStallMs))) this.slowCut();
  }

  private slowCut(): void {
    if (this.closed) return;
    this.tooSlow();
    this.cut();
  }

  cut(): void {
    this.finish();
    this.sink?.destroy();
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    // No stream yet while the backlog is read: handlePoll then answers `[]` itself.
    this.sink?.end(encodeChunk("[]"));
  }

  move(hintMs: number): void {
    if (this.closed) return;
    this.finish();
    this.sink?.end(encodeChunk(batchJson([], { __drain: hintMs })) + encodeChunk("[]"), true);
  }
}

/**
 * `POST {base}/{clientId}/poll` (docs/protocol.md#61-poll, #62-long-poll, #63-chunked-long-poll):
 * `?dlp=t` answers at once; otherwise the request is held until something is due or the long-poll
 * timeout, as one JSON response (`Dont-Chunk`) or a chunked stream.
 * An answer holds at most a page of the backlog (a quarter of `maxBufferedBytes`); the client
 * asks again at once for the rest.
 */
export async function handlePoll(ctx: TransportContext, x: Exchange, sub: Subscription, who: Identity): Promise<Response> {
  const size = pageBytes(ctx.limits);
  // How widely a client cut without a word spreads its reconnection (docs/protocol.md#75-moving-spreading-and-shedding).
  const hints = { "X-Cometbus-Spread": String(ctx.spreadMs()) };
  const drain = ctx.drainHint();
  const longPolling = ctx.longPolling && !x.search.includes("dlp=t");
  if (!longPolling || drain !== null) {
    // Draining, a long-poll is not held: what is due now, and where to go (the routes close the connection).
    const cu = await CatchUp.open(ctx.backend, sub.positions, sub.epoch, who);
    const { messages } = await cu.next(size);
    ctx.hub.tally.caughtUp("poll", sub.positions.values(), cu.resetReasons);
    const status = cu.status();
    return x.json(batchJson(messages, drain === null || !longPolling ? status : { ...status, __drain: drain }), hints);
  }

  // message_bus looks at the header's presence, whatever its value (even empty).
  const chunked = ctx.chunkedEncoding && x.header("dont-chunk") === undefined && x.http11;
  const seq = sub.seq ?? 0;
  const slot = pollSlot(who);
  const previous = ctx.longPolls.get(slot);
  if (previous && previous.seq > seq) return x.json("[]", hints);
  previous?.close();

  const poll: HeldPoll = chunked ? new ChunkedPoll(ctx, who, seq, slot, ctx.limits) : new LongPoll(ctx, who, seq, slot);
  ctx.longPolls.set(slot, poll);
  // Pipelined behind another response on this connection: hold nothing until it is this one's turn.
  // No closure here, nor in the functions below while a poll is held: one made in this function
  // would share its context, and keep the exchange and the parsed subscription for the whole hold.
  if (!(await x.turn()) || !x.onGone(poll.finish.bind(poll))) {
    poll.finish();
    return x.gone();
  }
  if (poll.closed) return x.json("[]", hints); // replaced while waiting for its turn
  return poll instanceof LongPoll ? holdLongPoll(ctx, x, sub, poll, size, hints) : streamChunked(ctx, x, sub, poll as ChunkedPoll, size, hints);
}

async function holdLongPoll(ctx: TransportContext, x: Exchange, sub: Subscription, poll: LongPoll, size: number, hints: Record<string, string>): Promise<Response> {
  try {
    await poll.load(ctx.backend, sub.positions, sub.epoch, poll.writer(), { pageBytes: size });
  } catch (e) {
    poll.finish();
    throw e;
  }
  if (poll.answered !== undefined) return x.json(poll.answered, hints);
  if (poll.closed) return x.json("[]", hints); // replaced or aborted while reading the backlog
  // Held: the runtime keeps what it needs to answer later (on Node, just the response object).
  // Its hints as of the answer: the process may have filled up while it was held.
  const later = x.later(spreadHints(ctx));
  poll.later = later;
  poll.hold(ctx.longPollTimeout);
  return later.response;
}

/** Per bus, one function that gives a held poll's answer its spread hint as of the answer. */
const hintsOf = new WeakMap<TransportContext, () => Record<string, string>>();

function spreadHints(ctx: TransportContext): () => Record<string, string> {
  let f = hintsOf.get(ctx);
  if (!f) hintsOf.set(ctx, (f = () => ({ "X-Cometbus-Spread": String(ctx.spreadMs()) })));
  return f;
}

async function streamChunked(ctx: TransportContext, x: Exchange, sub: Subscription, poll: ChunkedPoll, size: number, hints: Record<string, string>): Promise<Response> {
  let response: Response | undefined;
  let begun: boolean;
  try {
    begun = await beginStream(
      (began) =>
        poll.load(ctx.backend, sub.positions, sub.epoch, {
          begin: () => {
            const opened = x.stream({ ...NO_CACHE, "Content-Type": CHUNKED_TYPE, "X-Accel-Buffering": "no", ...hints }, poll);
            poll.sink = opened.sink;
            response = opened.response;
            poll.hold(ctx.longPollTimeout);
            began();
          },
          page: (p) => poll.page(p),
        }, { pageBytes: size }),
      // The stream is open: a store read failing half-way ends it; the client resumes from its positions.
      (e) => {
        reportLate(ctx, e);
        poll.cut();
      },
    );
  } catch (e) {
    poll.finish();
    throw e;
  }
  return begun && response ? response : x.json("[]", hints); // replaced or aborted before the stream began
}
