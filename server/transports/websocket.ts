import type { Socket } from "node:net";
import type { Context } from "hono";
import type { WebSocket } from "ws";
import { statusMessage, type StatusData } from "../../src/envelope.js";
import { ProtocolError } from "../../src/errors.js";
import { pageBytes } from "../../src/limits.js";
import { parseSubscription } from "../../src/subscription.js";
import { truncateUtf8 } from "../../src/text.js";
import { WS_CLOSE } from "../../src/wire.js";
import { BackendUnavailableError } from "../backends/store-errors.js";
import type { MessageBus } from "../bus.js";
import type { Identity } from "../core/targeting.js";
import { BatchMemo, type Outgoing } from "../core/outgoing.js";
import { type CatchUpPage, Subscriber } from "../core/subscriber.js";
import { batchJson, pageStatus } from "./common.js";
import { rawSocket, textFrame } from "../node/ws-frames.js";

const frames = new BatchMemo<Buffer>();
const encodeFrame = (batch: readonly Outgoing[]) => textFrame(batchJson(batch, null));

const HEARTBEAT = "[]";
/** Frames a client may have waiting while an earlier subscribe is answered. */
const MAX_QUEUED_FRAMES = 16;
/** A cut socket gets its close frame this long; then it is destroyed and what it did not read is freed. */
const CUT_GRACE_MS = 1000;

/**
 * Closes with a code and a reason that fit the protocol's 123 bytes. `ws` throws on a longer
 * reason, and a throw here (inside a promise chain) once ended the process.
 */
export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, truncateUtf8(reason, 123));
  } catch {
    ws.terminate();
  }
}

/**
 * A WebSocket: `{"subscribe":{…}}` / `{"unsubscribe":[…]}` frames in, arrays of envelopes out.
 * The server speaks first (a welcome holding the epoch) so a client can tell a WebSocket that
 * opened but leads nowhere (a proxy that accepted the upgrade and then forwards nothing).
 */
export class WsSubscriber extends Subscriber {
  readonly kind = "websocket";
  /** Where prepared frames are written; null if `ws` ever stops exposing it (then `ws.send`). */
  private readonly socket: Socket | null;
  /** Frames not handled yet: one at a time, in order, so a burst cannot outrun the limits. */
  private readonly inbox: Buffer[] = [];
  private busy = false;

  constructor(
    private readonly bus: MessageBus,
    who: Identity,
    private readonly ws: WebSocket,
    /** Kept only when an `authorize` hook needs the upgrade request later. */
    private readonly ctx: Context | null,
  ) {
    super(bus.hub, who);
    this.socket = rawSocket(ws);
    this.hub.subscribers.add(this);
    ws.on("message", (data, isBinary) => this.receive(data as Buffer, isBinary));
    ws.on("close", () => this.finish());
    ws.on("error", () => this.finish());
    ws.send(JSON.stringify([statusMessage({ __epoch: bus.backend.epoch })]));
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    const limits = this.bus.limits;
    if (data.length > limits.maxFrameBytes) {
      return this.fail(new ProtocolError(`frame too large: at most ${limits.maxFrameBytes} bytes`, 413, WS_CLOSE.tooBig));
    }
    if (isBinary) return this.fail(new ProtocolError("binary frames are not part of the protocol", 400, WS_CLOSE.invalidData));
    if (this.inbox.length >= MAX_QUEUED_FRAMES) {
      return this.fail(new ProtocolError(`too many frames in flight: at most ${MAX_QUEUED_FRAMES} waiting for a subscribe's answer`));
    }
    this.inbox.push(data);
    // Read no more from this socket until these are handled.
    if (this.inbox.length > 1) this.ws.pause();
    void this.pump();
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

  private async handle(data: Buffer): Promise<void> {
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString("utf8"));
    } catch {
      throw new ProtocolError("invalid JSON frame", 400, WS_CLOSE.invalidData);
    }
    if (frame && typeof frame === "object" && "subscribe" in frame) {
      await this.subscribe((frame as { subscribe: unknown }).subscribe);
    } else if (frame && typeof frame === "object" && "unsubscribe" in frame) {
      const list = (frame as { unsubscribe: unknown }).unsubscribe;
      if (!Array.isArray(list) || !list.every((c) => typeof c === "string")) {
        throw new ProtocolError('unsubscribe takes an array of channel names: {"unsubscribe":["/chat"]}');
      }
      this.hub.remove(this, list.filter((ch) => this.positions.has(ch)));
    } else {
      throw new ProtocolError('unknown frame: send {"subscribe":{"/channel":lastId}} or {"unsubscribe":["/channel"]}');
    }
  }

  private async subscribe(body: unknown): Promise<void> {
    const limits = this.bus.limits;
    const sub = parseSubscription(body, { limits });
    const fresh = [...sub.positions.keys()].filter((ch) => !this.positions.has(ch)).length;
    if (this.positions.size + fresh > limits.maxChannels) {
      throw new ProtocolError(`too many channels: at most ${limits.maxChannels} on one connection`);
    }
    if (this.ctx) await this.bus.authorizeAll(this.ctx, sub.positions.keys());
    if (this.closed) return;
    const size = pageBytes(limits);
    await this.load(this.bus.backend, sub.positions, sub.epoch, { page: (p) => this.page(p) }, { pageBytes: size });
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
    else if (!(await this.sendAndWait(frame, this.bus.limits.maxStallMs))) this.cut();
  }

  /** Sends, and resolves true once the frame is on the network; false if that takes `ms` or the socket goes. */
  private sendAndWait(frame: string, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.ws.send(frame, (err) => {
        clearTimeout(timer);
        resolve(!err && this.ws.readyState === 1);
      });
    });
  }

  private fail(e: unknown): void {
    if (e instanceof ProtocolError) return this.closeWith(e.closeCode, e.message);
    if (e instanceof BackendUnavailableError) return this.closeWith(WS_CLOSE.tryAgainLater, "the store is unavailable: try again later");
    this.bus.logError(e);
    this.closeWith(WS_CLOSE.serverError, "server error");
  }

  private closeWith(code: number, reason: string): void {
    this.finish();
    // Paused while frames waited: the closing handshake needs the client's close frame read.
    this.ws.resume();
    closeSocket(this.ws, code, reason);
  }

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed) return;
    if (!status && batch.length && this.socket && this.ws.readyState === 1) {
      // Live messages: frames built once per message (or per identical batch), shared by every socket.
      this.socket.write(batch.length === 1 ? batch[0].wsFrame : frames.get(batch, "", encodeFrame));
    } else this.ws.send(batchJson(batch, status));
    // A consumer that cannot keep up is cut; it resumes from its positions, from the backlog.
    if (this.ws.bufferedAmount > this.bus.limits.maxBufferedBytes) this.cut();
  }

  /** Too slow: told 1013 (resume from the backlog), and destroyed soon if it does not read even that. */
  cut(): void {
    if (this.closed) return;
    this.closeWith(WS_CLOSE.tryAgainLater, "slow consumer: reconnect and resume from the backlog");
    const ws = this.ws;
    const timer = setTimeout(() => ws.terminate(), CUT_GRACE_MS);
    timer.unref();
    ws.once("close", () => clearTimeout(timer));
  }

  override heartbeat(): void {
    if (!this.closed) this.ws.send(HEARTBEAT);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.inbox.length = 0;
    this.hub.remove(this);
  }

  close(): void {
    this.closeWith(WS_CLOSE.goingAway, "server shutting down");
  }
}
