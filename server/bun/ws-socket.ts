import { closeReason } from "../../src/text.js";
import type { SharedText } from "../core/shared-text.js";
import type { WsPeer, WsSocket } from "../transports/io.js";
import type { BunSocket } from "./types.js";

/** What an upgraded request carries into Bun's `websocket` handlers. */
export interface BunSocketData {
  open: (socket: WsSocket) => WsPeer;
  socket?: BunWsSocket;
}

/** A Bun ServerWebSocket as the transport sees it. */
export class BunWsSocket implements WsSocket {
  peer: WsPeer | null = null;
  /** sendAndWait calls waiting for Bun's `drain`. */
  private waiting: (() => void)[] = [];

  constructor(private readonly ws: BunSocket<BunSocketData>) {}

  get open(): boolean {
    return this.ws.readyState === 1;
  }

  get bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }

  send(text: string): void {
    if (!this.open) return;
    // 0: Bun dropped the frame (past its backpressure limit, or the socket is going). A stream with a
    // hole is worse than none: cut it, and the client resumes from its positions.
    if (this.ws.sendText(text) === 0) this.terminate();
  }

  sendShared(frame: SharedText): void {
    this.send(frame.text);
  }

  sendAndWait(text: string, ms: number): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    const sent = this.ws.sendText(text);
    if (sent > 0) return Promise.resolve(true);
    if (sent === 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiting = this.waiting.filter((w) => w !== wake);
        resolve(ok);
      };
      const wake = () => done(this.open);
      const timer = setTimeout(() => done(false), ms);
      this.waiting.push(wake);
    });
  }

  /** Bun's `drain`: what was queued under backpressure is on the network. */
  drained(): void {
    for (const wake of [...this.waiting]) wake();
  }

  /** The socket closed: nobody waits for a drain any more. */
  closed(): void {
    this.drained();
    this.peer?.gone();
  }

  close(code: number, reason: string): void {
    try {
      this.ws.close(code, closeReason(reason));
    } catch {
      this.terminate();
    }
  }

  terminate(): void {
    try {
      this.ws.terminate();
    } catch {
      // Already gone.
    }
  }

  // Bun reads every frame as it comes; the transport bounds the frames waiting (MAX_QUEUED_FRAMES).
  pause(): void {}
  resume(): void {}
}
