import type { Context } from "hono";
import type { SharedText } from "../core/shared-text.js";
import { busJson, JSON_TYPE, NO_CACHE } from "../transports/common.js";
import type { Exchange, LaterAnswer, Sink, SinkOwner } from "../transports/io.js";
import type { RouteRuntime } from "./route-deps.js";

const JSON_HEADERS = { ...NO_CACHE, "Content-Type": JSON_TYPE };

/**
 * A request on any web-standard runtime (and through `app.request` in tests): the answer is a
 * Response, a stream is a ReadableStream, and a client leaving is the request's abort signal.
 * The Node adapter has a faster one (server/node/exchange.ts) and falls back to this.
 */
export class WebExchange implements Exchange {
  constructor(private readonly c: Context) {}

  header(name: string): string | undefined {
    return this.c.req.header(name);
  }

  get search(): string {
    return new URL(this.c.req.url).search;
  }

  readonly http11 = true;

  turn(): boolean {
    return !this.c.req.raw.signal.aborted;
  }

  onGone(fn: () => void): boolean {
    const signal = this.c.req.raw.signal;
    if (signal.aborted) return false;
    signal.addEventListener("abort", fn, { once: true });
    return true;
  }

  json(body: string, headers?: Record<string, string>): Response {
    return busJson(body, headers ? { ...JSON_HEADERS, ...headers } : JSON_HEADERS);
  }

  later(headers?: () => Record<string, string>): LaterAnswer {
    // The runtime keeps its connections as it likes: no way to ask it to close one after this.
    let answer!: (body: string) => void;
    const response = new Promise<Response>((resolve) => (answer = (body) => resolve(this.json(body, headers?.()))));
    return { answer, response };
  }

  stream(headers: Record<string, string>, owner: SinkOwner): { sink: Sink; response: Response } {
    const sink = new StreamSink(owner);
    return { sink, response: new Response(sink.stream, { status: 200, headers }) };
  }

  gone(): Response {
    // Nobody reads it: the client has left.
    return new Response(null, { status: 204 });
  }
}

/** A stream as a ReadableStream: "taken" means its reader pulled again. */
class StreamSink implements Sink {
  readonly stream: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private ended = false;
  private queued = 0;
  private pulled: (() => void) | null = null;
  private readonly encoder = new TextEncoder();

  constructor(private readonly owner: SinkOwner) {
    this.stream = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        this.controller = ctl;
      },
      pull: () => {
        this.queued = 0;
        this.pulled?.();
      },
      cancel: () => this.finish(),
    });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.owner.finish();
  }

  write(chunk: string): void {
    if (this.ended) return;
    const bytes = this.encoder.encode(chunk);
    this.queued += bytes.length;
    this.controller.enqueue(bytes);
  }

  writeShared(text: SharedText): void {
    this.write(text.text);
  }

  writeAndWait(chunk: string, ms: number): Promise<boolean> {
    if (this.ended) return Promise.resolve(false);
    this.write(chunk);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pulled = null;
        resolve(false);
      }, ms);
      this.pulled = () => {
        clearTimeout(timer);
        this.pulled = null;
        resolve(!this.ended);
      };
    });
  }

  end(last?: string): void {
    // A web stream cannot close its connection; ending the stream is all it can do.
    if (this.ended) return;
    if (last) this.controller.enqueue(this.encoder.encode(last));
    this.controller.close();
    this.finish();
  }

  destroy(): void {
    if (this.ended) return;
    this.controller.error(new Error("cut"));
    this.finish();
  }

  get buffered(): number {
    return this.queued;
  }

  get closed(): boolean {
    return this.ended;
  }
}

/** A runtime with no more than web standards: no pipelining to watch, no WebSocket upgrades of its own. */
export const webRuntime: RouteRuntime = {
  exchange: (c) => new WebExchange(c),
  admit: () => true,
  discardUnreadBody: () => {},
  clientLeft: (c) => c.req.raw.signal.aborted,
  canUpgrade: () => false,
  upgrade: (c) => c.json({ error: "WebSocket upgrades are not served here" }, 426),
};
