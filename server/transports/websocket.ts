import type { Socket } from "node:net";
import type { Context } from "hono";
import type { WebSocket } from "ws";
import { statusMessage, type StatusData } from "../../src/envelope.js";
import { ProtocolError } from "../../src/errors.js";
import { parseSubscription } from "../../src/subscription.js";
import { WS_CLOSE } from "../../src/wire.js";
import type { MessageBus } from "../bus.js";
import { catchUp, tailStatus } from "../catch-up.js";
import type { Identity } from "../identity.js";
import { BatchMemo, type Outgoing } from "../outgoing.js";
import { Subscriber } from "../subscriber.js";
import { batchJson } from "./common.js";
import { rawSocket, textFrame } from "./ws-frame.js";

const frames = new BatchMemo<Buffer>();
const encodeFrame = (batch: readonly Outgoing[]) => textFrame(batchJson(batch, null));

const HEARTBEAT = "[]";

/**
 * A WebSocket: `{"subscribe":{…}}` / `{"unsubscribe":[…]}` frames in, arrays of envelopes out.
 * The server speaks first (a welcome holding the epoch) so a client can tell a WebSocket that
 * opened but leads nowhere (a proxy that accepted the upgrade and then forwards nothing).
 */
export class WsSubscriber extends Subscriber {
  readonly kind = "websocket";
  /** Where prepared frames are written; null if `ws` ever stops exposing it (then `ws.send`). */
  private readonly socket: Socket | null;

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
    let frame: unknown;
    try {
      if (data.length > this.bus.limits.maxFrameBytes) {
        throw new ProtocolError(`frame too large: at most ${this.bus.limits.maxFrameBytes} bytes`, 413, WS_CLOSE.tooBig);
      }
      if (isBinary) throw new ProtocolError("binary frames are not part of the protocol", 400, WS_CLOSE.invalidData);
      try {
        frame = JSON.parse(data.toString("utf8"));
      } catch {
        throw new ProtocolError("invalid JSON frame", 400, WS_CLOSE.invalidData);
      }
      if (frame && typeof frame === "object" && "subscribe" in frame) {
        void this.subscribe((frame as { subscribe: unknown }).subscribe).catch((e) => this.fail(e));
      } else if (frame && typeof frame === "object" && "unsubscribe" in frame) {
        const list = (frame as { unsubscribe: unknown }).unsubscribe;
        if (!Array.isArray(list) || !list.every((c) => typeof c === "string")) {
          throw new ProtocolError('unsubscribe takes an array of channel names: {"unsubscribe":["/chat"]}');
        }
        this.hub.remove(this, list.filter((ch) => this.positions.has(ch)));
      } else {
        throw new ProtocolError('unknown frame: send {"subscribe":{"/channel":lastId}} or {"unsubscribe":["/channel"]}');
      }
    } catch (e) {
      this.fail(e);
    }
  }

  private async subscribe(body: unknown): Promise<void> {
    const sub = parseSubscription(body, { limits: this.bus.limits });
    const fresh = [...sub.positions.keys()].filter((ch) => !this.positions.has(ch)).length;
    if (this.positions.size + fresh > this.bus.limits.maxChannels) {
      throw new ProtocolError(`too many channels: at most ${this.bus.limits.maxChannels} on one connection`);
    }
    if (this.ctx) await this.bus.authorizeAll(this.ctx, sub.positions.keys());
    if (this.closed) return;
    this.register(sub.positions.keys());
    try {
      const cu = await catchUp(this.bus.backend, sub.positions, sub.epoch, this.who);
      if (this.closed) return;
      this.settle(cu.positions);
      const status = tailStatus(cu);
      // An empty array acknowledges the subscription even when nothing is due.
      this.send(cu.messages, status);
    } finally {
      this.endLoading();
    }
  }

  private fail(e: unknown): void {
    if (e instanceof ProtocolError) this.ws.close(e.closeCode, e.message.slice(0, 120));
    else {
      this.bus.logError(e);
      this.ws.close(WS_CLOSE.serverError, "server error");
    }
  }

  send(batch: Outgoing[], status: StatusData | null): void {
    if (this.closed) return;
    if (!status && batch.length && this.socket && this.ws.readyState === 1) {
      // Live messages: frames built once per message (or per identical batch), shared by every socket.
      this.socket.write(batch.length === 1 ? batch[0].wsFrame : frames.get(batch, "", encodeFrame));
    } else this.ws.send(batchJson(batch, status));
    if (this.ws.bufferedAmount > this.bus.limits.maxWsBufferedBytes) {
      // A consumer that cannot keep up is cut; it resumes from its positions, from the backlog.
      this.ws.close(WS_CLOSE.tryAgainLater, "slow consumer: reconnect and resume from the backlog");
      this.finish();
    }
  }

  override heartbeat(): void {
    if (!this.closed) this.ws.send(HEARTBEAT);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.remove(this);
  }

  close(): void {
    this.finish();
    this.ws.close(WS_CLOSE.goingAway, "server shutting down");
  }
}
