import type { ServerResponse } from "node:http";
import type { SharedText } from "../core/shared-text.js";
import type { Sink, SinkOwner } from "../transports/io.js";
import { framedChunk } from "./chunk-framing.js";
import type { FastPaths } from "./fast-paths.js";

/** Node's own state of a response: its head is on the wire and its body is chunked. */
type ResponseState = { _headerSent?: boolean; chunkedEncoding?: boolean; _header?: unknown };

/**
 * Node keeps a response's head (`_header`) for the response's whole life, as the rope of ~25 pieces
 * it was concatenated from: about 800 bytes where the flat text is about 200. Idle streams are many,
 * so each keeps a flat copy of the same text (headers are latin1 on the wire).
 */
export function flattenHead(out: ServerResponse): void {
  const r = out as ServerResponse & ResponseState;
  if (typeof r._header === "string") r._header = Buffer.from(r._header, "latin1").toString("latin1");
}

/**
 * A Node response held open, written straight to: one syscall-sized write per batch, no web-stream
 * machinery per message. A class, not an object of closures: ten thousand idle streams each keep
 * one of these, so its methods live once on the prototype.
 */
export class NodeSink implements Sink {
  private ended = false;

  constructor(
    private readonly out: ServerResponse,
    private readonly owner: SinkOwner,
    private readonly fast: FastPaths,
  ) {}

  /** The client left: told by the connection watch (connection.ts), with `this` bound (exchange.ts). */
  gone(): void {
    if (this.ended) return;
    this.ended = true;
    this.owner.finish();
  }

  write(chunk: string): void {
    if (!this.ended) this.out.write(chunk);
  }

  writeShared(text: SharedText): void {
    if (this.ended) return;
    const out = this.out;
    const state = out as ServerResponse & ResponseState;
    // Once the head is out, a chunked body can go straight to the socket (in order with
    // out.write, which writes there too) with its chunk framing made once for every stream.
    if (this.fast.directChunks && state._headerSent === true && state.chunkedEncoding === true && out.socket && !out.writableEnded) {
      out.socket.write(framedChunk(text));
    } else out.write(text.text);
  }

  writeAndWait(chunk: string, ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.out.off("close", gone);
        resolve(ok);
      };
      const gone = () => done(false);
      const timer = setTimeout(gone, ms);
      this.out.once("close", gone);
      // Node calls back once the chunk was handed to the kernel, or with an error if the socket went.
      this.out.write(chunk, (err) => done(!err));
    });
  }

  end(last?: string, close = false): void {
    if (this.ended) return;
    this.ended = true;
    // The socket is kept now: once the response is written, Node detaches it for the next request.
    const socket = this.out.socket;
    this.out.end(last, close ? () => socket?.end() : undefined);
    this.owner.finish();
  }

  destroy(): void {
    const wasEnded = this.ended;
    this.ended = true;
    this.out.destroy();
    if (!wasEnded) this.owner.finish();
  }

  get buffered(): number {
    return this.out.writableLength;
  }

  get closed(): boolean {
    return this.ended || this.out.destroyed;
  }
}
