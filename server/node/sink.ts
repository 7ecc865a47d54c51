import type { ServerResponse } from "node:http";
import type { Context } from "hono";

/** A response that stays open and is written to as messages come (SSE, chunked long-poll). */
export interface Sink {
  write(chunk: string | Uint8Array): void;
  /** The same bytes as many other sinks get (see SharedBytes). */
  writeShared(bytes: SharedBytes): void;
  end(last?: string): void;
  /** Cuts the connection at once: what is buffered for a client that does not read is freed. */
  destroy(): void;
  /** Writes, and resolves true once `chunk` is on the network; false if that takes `ms` or the client goes. */
  writeAndWait(chunk: string, ms: number): Promise<boolean>;
  /** Bytes written but not yet taken by the network. */
  readonly buffered: number;
  readonly closed: boolean;
}

import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { onClientGone } from "./connection.js";
import type { SharedBytes } from "./chunk-framing.js";

/** Node's own state of a response: its head is on the wire and its body is chunked. */
type ResponseState = { _headerSent?: boolean; chunkedEncoding?: boolean };

/**
 * Node keeps a response's head (`_header`) for the response's whole life, as the rope of ~25 pieces
 * it was concatenated from: about 800 bytes where the flat text is about 200. Idle streams are many,
 * so each keeps a flat copy of the same text (headers are latin1 on the wire).
 */
function flattenHead(out: ServerResponse): void {
  const r = out as ServerResponse & { _header?: unknown };
  if (typeof r._header === "string") r._header = Buffer.from(r._header, "latin1").toString("latin1");
}

/**
 * A Node response held open. A class, not an object of closures: ten thousand idle streams each
 * keep one of these, so its methods live once on the prototype.
 */
class NodeSink implements Sink {
  private ended = false;

  constructor(
    private readonly out: ServerResponse,
    private readonly owner: SinkOwner,
  ) {}

  readonly gone = (): void => {
    if (this.ended) return;
    this.ended = true;
    this.owner.finish();
  };

  write(chunk: string | Uint8Array): void {
    if (!this.ended) this.out.write(chunk);
  }

  writeShared(bytes: SharedBytes): void {
    if (this.ended) return;
    const out = this.out;
    const state = out as ServerResponse & ResponseState;
    // Once the head is out, a chunked body can go straight to the socket (in order with
    // out.write, which writes there too) with its chunk framing made once for every stream.
    if (state._headerSent === true && state.chunkedEncoding === true && out.socket && !out.writableEnded) {
      out.socket.write(bytes.framed);
    } else out.write(bytes.raw);
  }

  end(last?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.out.end(last);
    this.owner.finish();
  }

  destroy(): void {
    const wasEnded = this.ended;
    this.ended = true;
    this.out.destroy();
    if (!wasEnded) this.owner.finish();
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

  get buffered(): number {
    return this.out.writableLength;
  }

  get closed(): boolean {
    return this.ended || this.out.destroyed;
  }
}

/**
 * On Node the stream is written straight to the ServerResponse: one syscall-sized write per batch,
 * no web-stream machinery per message. Elsewhere (Bun, Deno, `app.request` in tests) a ReadableStream.
 */
/**
 * Who is told when the stream ends. An object, not a closure: a closure made where the stream is
 * opened would keep that function's whole context (the request, the parsed subscription) alive as
 * long as the stream.
 */
export interface SinkOwner {
  finish(): void;
}

export function openSink(
  c: Context,
  headers: Record<string, string>,
  owner: SinkOwner,
): { sink: Sink; response: Response } {
  const out = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (out && typeof out.writeHead === "function") {
    const sink = new NodeSink(out, owner);
    out.writeHead(200, headers);
    flattenHead(out);
    // The client may have left while the backlog was read: then it is gone already.
    if (!onClientGone(c, sink.gone)) queueMicrotask(sink.gone);
    return { sink, response: RESPONSE_ALREADY_SENT };
  }

  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let queued = 0;
  let pulled: (() => void) | null = null;
  const stream = new ReadableStream<Uint8Array>({
    start(ctl) {
      controller = ctl;
    },
    pull() {
      queued = 0;
      pulled?.();
    },
    cancel() {
      if (closed) return;
      closed = true;
      owner.finish();
    },
  });
  const sink: Sink = {
    write(chunk) {
      if (closed) return;
      const bytes = typeof chunk === "string" ? encoder.encode(chunk) : chunk;
      queued += bytes.length;
      controller.enqueue(bytes);
    },
    writeShared(bytes) {
      sink.write(bytes.raw);
    },
    end(last) {
      if (closed) return;
      if (last) controller.enqueue(encoder.encode(last));
      closed = true;
      controller.close();
      owner.finish();
    },
    destroy() {
      if (closed) return;
      closed = true;
      controller.error(new Error("cut"));
      owner.finish();
    },
    writeAndWait(chunk, ms) {
      if (closed) return Promise.resolve(false);
      sink.write(chunk);
      // A web stream has taken it once its reader pulls again.
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          pulled = null;
          resolve(false);
        }, ms);
        pulled = () => {
          clearTimeout(timer);
          pulled = null;
          resolve(!closed);
        };
      });
    },
    get buffered() {
      return queued;
    },
    get closed() {
      return closed;
    },
  };
  return { sink, response: new Response(stream, { status: 200, headers }) };
}
