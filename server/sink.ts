import type { ServerResponse } from "node:http";
import type { Context } from "hono";

/** A response that stays open and is written to as messages come (SSE, chunked long-poll). */
export interface Sink {
  write(chunk: string | Uint8Array): void;
  /** The same bytes as many other sinks get (see SharedBytes). */
  writeShared(bytes: SharedBytes): void;
  end(last?: string): void;
  /** Bytes written but not yet taken by the network. */
  readonly buffered: number;
  readonly closed: boolean;
}

import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { SharedBytes } from "./shared-bytes.js";

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
    private readonly onClose: () => void,
  ) {}

  readonly gone = (): void => {
    if (this.ended) return;
    this.ended = true;
    this.onClose();
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
    this.onClose();
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
export function openSink(
  c: Context,
  headers: Record<string, string>,
  onClose: () => void,
): { sink: Sink; response: Response } {
  const out = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (out && typeof out.writeHead === "function") {
    const sink = new NodeSink(out, onClose);
    out.writeHead(200, headers);
    flattenHead(out);
    out.on("close", sink.gone);
    // The client may have left while the backlog was read; "close" has then fired already.
    if (out.destroyed || out.socket?.destroyed) queueMicrotask(sink.gone);
    return { sink, response: RESPONSE_ALREADY_SENT };
  }

  const encoder = new TextEncoder();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let queued = 0;
  const stream = new ReadableStream<Uint8Array>({
    start(ctl) {
      controller = ctl;
    },
    pull() {
      queued = 0;
    },
    cancel() {
      if (closed) return;
      closed = true;
      onClose();
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
      onClose();
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
