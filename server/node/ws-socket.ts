import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import { closeReason } from "../../src/text.js";
import type { SharedText } from "../core/shared-text.js";
import type { WsPeer, WsSocket } from "../transports/io.js";
import type { FastPaths } from "./fast-paths.js";
import { deflatePayload, negotiatedWindow, type DeflateSettings } from "./ws-deflate.js";
import { rawSocket, sharedFrame, textFrame } from "./ws-frames.js";

/** A `ws` WebSocket as the transport sees it, with the shared-frame fast path where it is on. */
export class NodeWsSocket implements WsSocket {
  /** Where prepared frames are written; null without the fast path (then `ws.send`). */
  private readonly socket: Socket | null;
  /** The window this socket's permessage-deflate allows, null without it (or without the fast path: then `ws` compresses). */
  private readonly windowBits: number | null;
  private readonly threshold: number;

  constructor(
    private readonly ws: WebSocket,
    fast: FastPaths,
    deflate: DeflateSettings | null = null,
  ) {
    this.socket = fast.sharedFrames ? rawSocket(ws) : null;
    this.windowBits = this.socket && deflate ? negotiatedWindow(ws) : null;
    this.threshold = deflate?.threshold ?? 0;
  }

  /** This socket's own frame (not shared) compressed here, or null when it goes plain through `ws`. */
  private compressed(text: string): Buffer | null {
    if (this.windowBits === null || !this.open) return null;
    const bytes = Buffer.from(text);
    return bytes.length < this.threshold ? null : textFrame(deflatePayload(bytes, this.windowBits), true);
  }

  /**
   * Hands the socket's frames and its end to the transport. Bound functions, the end's one for both
   * events: three closures and their shared context took twice as much of every idle socket.
   */
  connect(peer: WsPeer): void {
    const gone = peer.gone.bind(peer);
    this.ws.on("message", receiveFrame.bind(peer));
    this.ws.on("close", gone);
    this.ws.on("error", gone);
  }

  get open(): boolean {
    return this.ws.readyState === 1;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(text: string): void {
    const frame = this.compressed(text);
    if (frame) this.socket!.write(frame);
    else this.ws.send(text);
  }

  sendShared(frame: SharedText): void {
    // `ws` keeps no queue of its own (it compresses nothing itself): a direct write lands in order.
    if (this.socket && this.open) this.socket.write(sharedFrame(frame, this.windowBits, this.threshold));
    else this.ws.send(frame.text);
  }

  sendAndWait(text: string, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      const done = (err?: Error | null) => {
        clearTimeout(timer);
        resolve(!err && this.open);
      };
      const frame = this.compressed(text);
      if (frame) this.socket!.write(frame, done);
      else this.ws.send(text, done);
    });
  }

  /**
   * A code and a reason that fit the protocol's 123 bytes. `ws` throws on a longer reason, and a
   * throw here (inside a promise chain) once ended the process.
   */
  close(code: number, reason: string): void {
    try {
      this.ws.close(code, closeReason(reason));
    } catch {
      this.ws.terminate();
    }
  }

  terminate(): void {
    this.ws.terminate();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }
}

/** A frame from `ws`, to the transport (`this`): its text (null when binary) and its size. */
function receiveFrame(this: WsPeer, data: Buffer, isBinary: boolean): void {
  this.receive(isBinary ? null : data.toString("utf8"), data.length);
}
