import type { ServerResponse } from "node:http";
import type { Context } from "hono";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { StatusData } from "../../src/envelope.js";
import type { Subscription } from "../../src/subscription.js";
import { encodeChunk } from "../../src/wire.js";
import type { MessageBus } from "../bus.js";
import { catchUp, tailStatus } from "../catch-up.js";
import { onClientGone } from "../client-gone.js";
import { header } from "../header.js";
import type { Identity } from "../identity.js";
import type { Outgoing } from "../outgoing.js";
import { openSink, type Sink } from "../sink.js";
import { Subscriber } from "../subscriber.js";
import { batchJson, CHUNKED_TYPE, JSON_TYPE, NO_CACHE } from "./common.js";

const jsonHeaders = { ...NO_CACHE, "Content-Type": JSON_TYPE };

function json(body: string): Response {
  return new Response(body, { status: 200, headers: jsonHeaders });
}

/** A held long-poll or chunked stream; message_bus's `__seq` lets a newer one replace an older one. */
abstract class HeldPoll extends Subscriber {
  private timer?: NodeJS.Timeout;

  constructor(
    bus: MessageBus,
    who: Identity,
    readonly seq: number,
    private readonly polls: Map<string, Subscriber & { seq: number }>,
  ) {
    super(bus.hub, who);
  }

  hold(ms: number, c: Context): void {
    // The client may have gone while the backlog was read: then there is nothing to hold.
    if (onClientGone(c, () => this.finish())) return this.finish();
    this.timer = setTimeout(() => this.close(), ms);
  }

  finish(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.hub.remove(this);
    if (this.polls.get(this.who.clientId) === this) this.polls.delete(this.who.clientId);
  }
}

class LongPoll extends HeldPoll {
  readonly kind = "long-poll";
  /** Set once the backlog is read; closed before that (replaced, shut down), handlePoll answers `[]`. */
  answer?: (body: string) => void;

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed) return;
    this.finish();
    this.answer?.(batchJson(batch, status));
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    this.answer?.("[]");
  }
}

class ChunkedPoll extends HeldPoll {
  readonly kind = "chunked";
  sink!: Sink;

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed) return;
    this.sink.write(batch.length === 1 && !status ? batch[0].chunk : encodeChunk(batchJson(batch, status)));
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    // No stream yet while the backlog is read: handlePoll then answers `[]` itself.
    this.sink?.end(encodeChunk("[]"));
  }
}

/**
 * `POST {base}/{clientId}/poll`: `?dlp=t` answers at once; otherwise the request is held until
 * something is due or the long-poll timeout, as one JSON response (`Dont-Chunk`) or a chunked stream.
 */
export async function handlePoll(bus: MessageBus, c: Context, sub: Subscription, who: Identity): Promise<Response> {
  const query = new URL(c.req.url).search;
  const longPolling = bus.options.longPolling && !query.includes("dlp=t");
  if (!longPolling) {
    const cu = await catchUp(bus.backend, sub.positions, sub.epoch, who);
    return json(batchJson(cu.messages, tailStatus(cu)));
  }

  const chunked = bus.options.chunkedEncoding && !header(c, "dont-chunk") && isHttp11(c);
  const seq = sub.seq ?? 0;
  const previous = bus.longPolls.get(who.clientId);
  if (previous && previous.seq > seq) return json("[]");
  previous?.close();

  const poll: HeldPoll = chunked ? new ChunkedPoll(bus, who, seq, bus.longPolls) : new LongPoll(bus, who, seq, bus.longPolls);
  bus.longPolls.set(who.clientId, poll);
  poll.register(sub.positions.keys());
  let cu;
  try {
    cu = await catchUp(bus.backend, sub.positions, sub.epoch, who);
  } catch (e) {
    poll.finish();
    throw e;
  }
  if (poll.closed) return json("[]"); // replaced or aborted while reading the backlog
  poll.settle(cu.positions);
  const status = tailStatus(cu);

  if (poll instanceof LongPoll) {
    if (cu.messages.length || status) {
      poll.finish();
      return json(batchJson(cu.messages, status));
    }
    const out = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (out && typeof out.writeHead === "function") {
      // On Node the held poll keeps just the ServerResponse: Hono's context, request and promise
      // chain are let go now (memory per idle long-poll), and the answer is one direct write.
      poll.answer = (body) => {
        if (out.destroyed) return;
        out.writeHead(200, { ...jsonHeaders, "Content-Length": Buffer.byteLength(body) });
        out.end(body);
      };
      poll.hold(bus.options.longPollTimeout, c);
      poll.endLoading();
      return RESPONSE_ALREADY_SENT;
    }
    const answer = new Promise<Response>((resolve) => (poll.answer = (body) => resolve(json(body))));
    poll.hold(bus.options.longPollTimeout, c);
    poll.endLoading();
    return answer;
  }

  const chunkedPoll = poll as ChunkedPoll;
  const { sink, response } = openSink(
    c,
    { ...NO_CACHE, "Content-Type": CHUNKED_TYPE, "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no" },
    () => chunkedPoll.finish(),
  );
  chunkedPoll.sink = sink;
  sink.write(encodeChunk(cu.messages.length || status ? batchJson(cu.messages, status) : "[]"));
  chunkedPoll.hold(bus.options.longPollTimeout, c);
  chunkedPoll.endLoading();
  return response;
}

function isHttp11(c: Context): boolean {
  const incoming = (c.env as { incoming?: { httpVersion?: string } } | undefined)?.incoming;
  return !incoming?.httpVersion || incoming.httpVersion === "1.1";
}
