import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import * as wsModule from "ws";

/**
 * The few places cometbus leans on private fields of Node and `ws` for speed, behind one door.
 * Each is probed once, at start-up, and each has a plain fallback that a bus with
 * `fastPaths: false` uses everywhere (test/server-fallbacks.test.ts runs the transports that way).
 */
export interface FastPaths {
  /**
   * A chunked response whose head is out takes pre-framed chunks straight on its socket
   * (`_headerSent`, `chunkedEncoding`): one SSE event framed once for every stream. Fallback: `res.write`.
   */
  readonly directChunks: boolean;
  /** A response keeps a flat copy of its head (`_header`): memory per idle stream. Fallback: as Node keeps it. */
  readonly flatHead: boolean;
  /**
   * Live WebSocket frames are built once by `ws`'s own framer (`Sender.frame`) and written to each
   * socket (`ws._socket`). Fallback: `ws.send` per socket.
   */
  readonly sharedFrames: boolean;
  /**
   * Not a private field but a shortcut past the framework: where nothing but the bus reads a request
   * (its own listener, no lookups), polls and long-polls are answered straight from node:http
   * (direct-poll.ts). Fallback: through @hono/node-server and the Hono routes, as every other request.
   */
  readonly directPolls: boolean;
}

export const NO_FAST_PATHS: FastPaths = { directChunks: false, flatHead: false, sharedFrames: false, directPolls: false };

type Framer = { frame(data: Buffer, o: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[] };

/** `ws`'s framer, where it exposes one (its types do not describe it). */
export const wsFramer = (wsModule as unknown as { Sender?: Partial<Framer> }).Sender as Framer | undefined;

let probed: FastPaths | undefined;

/** What this Node and this `ws` offer; probed on first use, then remembered. */
export function probeFastPaths(): FastPaths {
  if (probed) return probed;
  const res = new ServerResponse(new IncomingMessage(new Socket())) as unknown as Record<string, unknown>;
  const directChunks = typeof res._headerSent === "boolean" && typeof res.chunkedEncoding === "boolean";
  const flatHead = "_header" in res;
  let sharedFrames = false;
  try {
    const frame = wsFramer?.frame(Buffer.from("ok"), { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false });
    const bytes = frame && Buffer.concat(frame);
    // Made as ws's own server makes its sockets: no address, and options.
    const probe = new (wsModule.WebSocket as unknown as new (a: null, p: undefined, o: object) => object)(null, undefined, {});
    const socketField = "_socket" in probe;
    sharedFrames = !!bytes && bytes.equals(Buffer.from([0x81, 0x02, 0x6f, 0x6b])) && socketField;
  } catch {
    sharedFrames = false;
  }
  return (probed = { directChunks, flatHead, sharedFrames, directPolls: true });
}
