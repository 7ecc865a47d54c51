import type { Socket } from "node:net";
import { WebSocket as WebSocketClass, type WebSocket } from "ws";
import type { SharedText } from "../core/shared-text.js";
import { wsFramer } from "./fast-paths.js";
import { deflatePayload } from "./ws-deflate.js";

/** A whole unmasked WebSocket text frame (server → client frames are never masked), by `ws`'s own framer. */
export function textFrame(payload: Buffer, compressed: boolean): Buffer {
  const parts = wsFramer!.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: compressed });
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

/**
 * The frames of one live message: plain, and compressed per window size on first use. The payload
 * to compress is read from the plain frame (its tail), so the message's bytes are kept once.
 */
class PreparedFrames {
  readonly plain: Buffer;
  private readonly size: number;
  private readonly deflated: (Buffer | undefined)[] = [];

  constructor(text: string) {
    const payload = Buffer.from(text);
    this.size = payload.length;
    this.plain = textFrame(payload, false);
  }

  get(windowBits: number | null, threshold: number): Buffer {
    if (windowBits === null || this.size < threshold) return this.plain;
    return (this.deflated[windowBits] ??= textFrame(deflatePayload(this.plain.subarray(this.plain.length - this.size), windowBits), true));
  }
}

/**
 * The frame of a live message, the same bytes for every socket: built once per message (and once
 * more per window size for sockets with permessage-deflate, ws-deflate.ts), never once per socket.
 * Only with the `sharedFrames` fast path (fast-paths.ts).
 */
export function sharedFrame(text: SharedText, windowBits: number | null = null, threshold = 0): Buffer {
  return text.prepare((t) => new PreparedFrames(t)).get(windowBits, threshold);
}

/**
 * The socket under a `ws` WebSocket, to write prepared frames to. `ws` keeps no frame queue of its own
 * while it compresses nothing (ws-deflate.ts sees to that), so a direct write lands in order with its sends.
 */
export function rawSocket(ws: WebSocket): Socket | null {
  const s = (ws as unknown as { _socket?: Socket })._socket;
  return s && typeof s.write === "function" ? s : null;
}

/**
 * `ws` closes on its own for frames it refuses before we see them (over `maxPayload`, invalid
 * UTF-8, broken framing), with a code but no reason. Given to the WebSocketServer as its class, this
 * says why, as every other close of the protocol does.
 */
export function explainingWebSocket(maxFrameBytes: number): typeof WebSocketClass {
  const reasons: Record<number, string> = {
    1002: "WebSocket protocol error",
    1007: "invalid UTF-8 in a text frame",
    1009: `frame too large: at most ${maxFrameBytes} bytes`,
  };
  return class ExplainingWebSocket extends WebSocketClass {
    override close(code?: number, reason?: string | Buffer): void {
      super.close(code, reason === undefined && code !== undefined ? reasons[code] : reason);
    }
  };
}
