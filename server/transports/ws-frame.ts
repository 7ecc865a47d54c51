import type { Socket } from "node:net";
import type { WebSocket } from "ws";

/**
 * A whole unmasked WebSocket text frame (server → client frames are never masked), so one message's
 * frame is built once and the same bytes go to every socket: DESIGN §6, one write per connection.
 */
export function textFrame(payload: string | Buffer): Buffer {
  const data = typeof payload === "string" ? Buffer.from(payload) : payload;
  const n = data.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + n);
  frame[0] = 0x81; // FIN + text
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(n, 6);
  }
  data.copy(frame, head);
  return frame;
}

/**
 * The socket under a `ws` WebSocket, to write prepared frames to. `ws` keeps no frame queue of its own
 * when permessage-deflate is off (ours always is), so a direct write lands in order with its sends.
 */
export function rawSocket(ws: WebSocket): Socket | null {
  const s = (ws as unknown as { _socket?: Socket })._socket;
  return s && typeof s.write === "function" ? s : null;
}
