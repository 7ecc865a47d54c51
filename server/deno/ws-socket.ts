import { closeReason } from "../../src/text.js";
import type { SharedText } from "../core/shared-text.js";
import type { WsSocket } from "../transports/io.js";

/** How often sendAndWait looks whether Deno has written what it queued (a web WebSocket has no drain event). */
const DRAIN_POLL_MS = 5;

/** A Deno server-side WebSocket (the web-standard one `Deno.upgradeWebSocket` gives) as the transport sees it. */
export class DenoWsSocket implements WsSocket {
  constructor(private readonly ws: WebSocket) {}

  get open(): boolean {
    return this.ws.readyState === 1;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(text: string): void {
    // A socket that is closing takes no frame; the web API would count it as buffered forever.
    if (this.open) this.ws.send(text);
  }

  sendShared(frame: SharedText): void {
    this.send(frame.text);
  }

  sendAndWait(text: string, ms: number): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    this.ws.send(text);
    const until = Date.now() + ms;
    return new Promise((resolve) => {
      const look = () => {
        if (!this.open) return resolve(false);
        if (this.ws.bufferedAmount === 0) return resolve(true);
        if (Date.now() >= until) return resolve(false);
        setTimeout(look, DRAIN_POLL_MS);
      };
      look();
    });
  }

  close(code: number, reason: string): void {
    try {
      this.ws.close(code, closeReason(reason));
    } catch {
      this.terminate();
    }
  }

  /**
   * A web WebSocket cannot drop its connection: a close frame is all there is (Deno then closes the
   * connection itself once the client answers, or its idle timeout passes).
   */
  terminate(): void {
    try {
      this.ws.close(1001, "");
    } catch {
      // Closing already.
    }
  }

  // Deno reads every frame as it comes; the transport bounds the frames waiting (MAX_QUEUED_FRAMES).
  pause(): void {}
  resume(): void {}
}
