import type { StatusData } from "../../src/envelope.js";
import { ProtocolError } from "../../src/errors.js";
import { pageBytes } from "../../src/limits.js";
import { parseRequests, replyFrame } from "../../src/request.js";
import { parseSubscription } from "../../src/subscription.js";
import { batchJson as encodeBatch, WS_CLOSE } from "../../src/wire.js";
import { BackendUnavailableError } from "../core/backend.js";
import { BatchMemo } from "../core/batch-memo.js";
import type { Outgoing } from "../core/outgoing.js";
import { SharedText } from "../core/shared-text.js";
import { type CatchUpPage, Subscriber } from "../core/subscriber.js";
import type { Identity } from "../core/targeting.js";
import { batchJson, pageStatus, spreadMoved } from "./common.js";
import type { TransportContext } from "./context.js";
import type { WsSocket } from "./io.js";

const frames = new BatchMemo<SharedText>();
const encodeFrame = (batch: readonly Outgoing[]) => new SharedText(batchJson(batch, null));

const HEARTBEAT = "[]";
/** Frames a client may have waiting while an earlier subscribe is answered. */
const MAX_QUEUED_FRAMES = 16;
/** A cut socket gets its close frame this long; then it is destroyed and what it did not read is freed. */
const CUT_GRACE_MS = 1000;

/**
 * A WebSocket (docs/protocol.md#65-websocket): `{"subscribe":{…}}` / `{"unsubscribe":[…]}` frames
 * in, arrays of envelopes out. The server speaks first (a welcome holding the epoch) so a client can tell a WebSocket that
 * opened but leads nowhere (a proxy that accepted the upgrade and then forwards nothing).
 */
export class WsSubscriber extends Subscriber {
  readonly kind = "websocket";
  /** Frames not handled yet: one at a time, in order, so a burst cannot outrun the limits. */
  private readonly inbox: string[] = [];
  private busy = false;
  /** The spread hint this client last heard (docs/protocol.md#75-moving-spreading-and-shedding). */
  private toldSpread: number;

  constructor(
    private readonly ctx: TransportContext,
    who: Identity,
    private readonly ws: WsSocket,
    /** Refuses channels this connection may not have (the app's `authorize`), or null when there is none. */
    private readonly authorize: ((channels: Iterable<string>) => Promise<void>) | null,
    /** What request handlers get as `ctx.c`: the upgrade's Context (kept only when the app takes requests). */
    private readonly origin: unknown = null,
  ) {
    super(ctx.hub, who);
    this.hub.add(this, []);
    // The epoch, and how widely to spread a reconnection if this socket is ever cut without a word.
    this.toldSpread = ctx.spreadMs();
    ws.send(encodeBatch([], { __epoch: ctx.backend.epoch, __spread: this.toldSpread }));
    const drain = ctx.drainHint();
    if (drain !== null) this.move(drain);
  }

  /** A frame from the client: its text (null for a binary frame) and its size in bytes. */
  receive(text: string | null, bytes: number): void {
    if (this.closed) return;
    const limits = this.ctx.limits;
    if (bytes > limits.maxFrameBytes) {
      return this.fail(new ProtocolError(`frame too large: at most ${limits.maxFrameBytes} bytes`, 413, WS_CLOSE.tooBig));
    }
    if (text === null) return this.fail(new ProtocolError("binary frames are not part of the protocol", 400, WS_CLOSE.invalidData));
    if (this.inbox.length >= MAX_QUEUED_FRAMES) {
      return this.fail(new ProtocolError(`too many frames in flight: at most ${MAX_QUEUED_FRAMES} waiting for a subscribe's answer`));
    }
    this.inbox.push(text);
    // Read no more from this socket until these are handled.
    if (this.inbox.length > 1) this.ws.pause();
    void this.pump();
  }

  /** The socket closed or failed. */
  gone(): void {
    this.finish();
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.inbox.length && !this.closed) await this.handle(this.inbox.shift()!);
    } catch (e) {
      this.fail(e);
    } finally {
      this.busy = false;
      // Also when closing: the client's answer to our close frame must be read.
      this.ws.resume();
    }
  }

  private async handle(text: string): Promise<void> {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      throw new ProtocolError("invalid JSON frame", 400, WS_CLOSE.invalidData);
    }
    if (frame && typeof frame === "object" && ("request" in frame || "requests" in frame)) {
      // Handed to the client's queue: a slow handler holds neither this socket's frames nor its subscribes.
      const requests = parseRequests(frame, this.ctx.limits.maxRequestsPerBatch);
      this.ctx.requests.submit(this.who, requests, this.origin, (_id, reply) => {
        if (!this.closed) this.ws.send(replyFrame([reply]));
      });
    } else if (frame && typeof frame === "object" && "subscribe" in frame) {
      await this.subscribe((frame as { subscribe: unknown }).subscribe);
    } else if (frame && typeof frame === "object" && "unsubscribe" in frame) {
      const list = (frame as { unsubscribe: unknown }).unsubscribe;
      if (!Array.isArray(list) || !list.every((c) => typeof c === "string")) {
        throw new ProtocolError('unsubscribe takes an array of channel names: {"unsubscribe":["/chat"]}');
      }
      this.leave(list.filter((ch) => this.positions.has(ch)));
    } else {
      throw new ProtocolError('unknown frame: send {"subscribe":{"/chan":lastId}}, {"unsubscribe":["/chan"]} or {"request":{"id":1,…}}');
    }
  }

  private async subscribe(body: unknown): Promise<void> {
    const limits = this.ctx.limits;
    const sub = parseSubscription(body, { limits });
    const fresh = [...sub.positions.keys()].filter((ch) => !this.positions.has(ch)).length;
    if (this.positions.size + fresh > limits.maxChannels) {
      throw new ProtocolError(`too many channels: at most ${limits.maxChannels} on one connection`);
    }
    if (this.authorize) await this.authorize(sub.positions.keys());
    if (this.closed) return;
    // A tab holding this socket for others names them all again whenever the set changes.
    if (sub.clients) this.who.alsoFor = sub.clients;
    const size = pageBytes(limits);
    await this.load(this.ctx.backend, sub.positions, sub.epoch, { page: (p) => this.page(p) }, { pageBytes: size });
  }

  /**
   * A catch-up page as one frame (the first even when empty: it acknowledges the subscription); the
   * next page waits until the client has taken this one.
   */
  private async page(p: CatchUpPage): Promise<void> {
    const status = pageStatus(p);
    if (!(p.first || p.messages.length || status)) return;
    const frame = batchJson(p.messages, status);
    if (p.last) this.ws.send(frame);
    else if (!(await this.ws.sendAndWait(frame, this.ctx.limits.maxStallMs))) this.slowCut();
  }

  private fail(e: unknown): void {
    if (e instanceof ProtocolError) return this.closeWith(e.closeCode, e.message);
    if (e instanceof BackendUnavailableError) {
      this.hub.tally.storeUnavailable.subscribe++;
      return this.closeWith(WS_CLOSE.tryAgainLater, "the store is unavailable: try again later");
    }
    this.ctx.report(e);
    this.closeWith(WS_CLOSE.serverError, "server error");
  }

  private closeWith(code: number, reason: string): void {
    this.finish();
    // Paused while frames waited: the closing handshake needs the client's close frame read.
    this.ws.resume();
    this.ws.close(code, reason);
  }

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed) return;
    // Live messages: one frame per message (or per identical batch), made once for every socket.
    if (!status && batch.length) this.ws.sendShared(batch.length === 1 ? batch[0].frame : frames.get(batch, "", encodeFrame));
    else this.ws.send(batchJson(batch, status));
    // A consumer that cannot keep up is cut; it resumes from its positions, from the backlog.
    if (this.ws.bufferedAmount > this.ctx.limits.maxBufferedBytes) this.slowCut();
  }

  private slowCut(): void {
    if (this.closed) return;
    this.tooSlow();
    this.cut();
  }

  /** Too slow: told 1013 (resume from the backlog), and destroyed soon if it does not read even that. */
  cut(): void {
    if (this.closed) return;
    this.closeWith(WS_CLOSE.tryAgainLater, "slow consumer: reconnect and resume from the backlog");
    const ws = this.ws;
    // (Terminating a socket that closed meanwhile does nothing.)
    const timer: { unref?(): void } = setTimeout(() => ws.terminate(), CUT_GRACE_MS);
    timer.unref?.();
  }

  override heartbeat(): void {
    if (!this.closed) this.ws.send(HEARTBEAT);
  }

  override retell(): void {
    if (this.closed) return;
    const spread = this.ctx.spreadMs();
    if (!spreadMoved(this.toldSpread, spread)) return;
    this.toldSpread = spread;
    this.ws.send(encodeBatch([], { __spread: spread }));
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox.length = 0;
    this.leave();
  }

  close(): void {
    this.closeWith(WS_CLOSE.goingAway, "server shutting down");
  }

  /** 1012 (service restart), with the hint in its reason: the client reconnects within it, elsewhere. */
  move(hintMs: number): void {
    this.closeWith(WS_CLOSE.serviceRestart, `service restart: reconnect within ${Math.round(hintMs)} ms`);
  }
}
