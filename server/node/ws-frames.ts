import type { Socket } from "node:net";
import { WebSocket as WebSocketClass, type WebSocket } from "ws";
import type { SharedText } from "../core/shared-text.js";
import { wsFramer } from "./fast-paths.js";

/**
 * A whole unmasked WebSocket text frame (server → client frames are never masked), built by `ws`'s
 * own framer once per message, so the same bytes go to every socket. Only with the `sharedFrames`
 * fast path (fast-paths.ts).
 */
export function sharedFrame(text: SharedText): Buffer {
  return text.prepare((t) => {
    const parts = wsFramer!.frame(Buffer.from(t), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false });
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  });
}

/**
 * The socket under a `ws` WebSocket, to write prepared frames to. `ws` keeps no frame queue of its own
 * when permessage-deflate is off (ours always is), so a direct write lands in order with its sends.
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
