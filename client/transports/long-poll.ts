import { decodeChunks } from "../../src/wire.js";
import { hintsOf, spreadHeader } from "../hints.js";
import { HttpError, postSubscription, readText, reportFallback } from "../http.js";
import type { Message } from "../types.js";
import { BaseTransport, isMessageArray } from "./base.js";

/**
 * `POST …/poll` held by the server: chunked (each batch as it comes) unless chunking is off or a
 * stream looked buffered, then one JSON answer (`Dont-Chunk`). `__seq` lets a newer long-poll of
 * this client replace an older one on the server, as message-bus-client's does.
 */
export class LongPollTransport extends BaseTransport {
  readonly name = "long-poll";
  private ac?: AbortController;
  private seq = 0;
  private firstChunk?: ReturnType<typeof setTimeout>;

  protected connect(): void {
    void this.request(++this.gen);
  }

  private wantChunked(): boolean {
    // With SSE on the list, streaming is SSE's job (probed in the background with its own first-event
    // timeout); a chunked long-poll on the delivery path would only add the risk of a buffering proxy
    // holding the first messages for firstChunkTimeout.
    if (!this.host.options.enableChunkedEncoding || this.host.options.transports.includes("sse")) return false;
    if (this.host.chunkedBackoff > 0) {
      this.host.chunkedBackoff--;
      return false;
    }
    return true;
  }

  private async request(gen: number): Promise<void> {
    const o = this.host.options;
    const ac = (this.ac = new AbortController());
    const sentEpoch = this.host.epoch;
    const chunked = this.wantChunked();
    const startedAt = Date.now();
    let got = false;
    // The server ends a chunked answer with a `[]` chunk; a stream that stops without it was cut.
    let cut = chunked;
    let chunksSeen = 0;
    let drain: number | undefined;
    const take = (batch: unknown) => {
      if (!isMessageArray(batch)) throw new Error("long-poll answer is not an array");
      this.host.stats.frames++;
      this.failures = 0;
      if (batch.length) got = true;
      drain = hintsOf(batch).drain ?? drain;
      // Positions first: the negotiator probes only once every -1 has been answered.
      this.host.receive(batch as Message[], sentEpoch);
      if (this.current(gen)) this.events.up(this);
    };
    if (chunked) {
      // No first chunk in time: a proxy is buffering. Go unchunked for a while (message-bus-client's rule).
      this.firstChunk = setTimeout(() => {
        if (!this.current(gen)) return;
        this.host.chunkedBackoff = o.retryChunkedAfterRequests;
        reportFallback(this.host, { from: "chunked", to: "long-poll", reason: "buffered" });
        this.refresh();
      }, o.firstChunkTimeout);
    }
    this.alive(gen);
    try {
      const body = { ...this.host.subscription(), __seq: ++this.seq };
      const res = await postSubscription(this.host, this.host.url("poll"), body, ac.signal, chunked ? undefined : { "Dont-Chunk": "true" });
      if (!this.current(gen)) return;
      spreadHeader(this.host, res);
      const type = res.headers.get("content-type") ?? "";
      if (!chunked || type.startsWith("application/json")) {
        const text = await res.text();
        if (!this.current(gen)) return;
        clearTimeout(this.firstChunk);
        this.host.stats.bytes += text.length;
        take(JSON.parse(text));
        cut = false;
      } else {
        let buffer = "";
        await readText(res, this.host, ac.signal, (text) => {
          if (!this.current(gen)) return false;
          clearTimeout(this.firstChunk);
          this.alive(gen);
          const { chunks, rest } = decodeChunks(buffer + text);
          buffer = rest;
          for (const chunk of chunks) {
            const batch: unknown = JSON.parse(chunk);
            take(batch);
            // The first chunk may be an empty one too: only a later one closes.
            cut = !(++chunksSeen > 1 && Array.isArray(batch) && batch.length === 0);
          }
          this.activity(false);
          if (!this.current(gen)) return false;
        });
        if (!this.current(gen)) return;
      }
      this.quiet();
      clearTimeout(this.firstChunk);
      // Told to move (a drain): the next request within the hint, through the balancer to another process.
      if (drain !== undefined) {
        this.moveOn(drain);
        return this.activity(true);
      }
      // Straight on after data; an answer that came back empty and early waits out the interval.
      this.later(got || cut ? o.minPollInterval : Math.max(o.minPollInterval, o.callbackInterval - (Date.now() - startedAt)));
      this.activity(true);
    } catch (e) {
      if (!this.current(gen)) return;
      // A held request answered 502/504 or dropped after a while is a proxy's read timeout cutting a
      // quiet long-poll, not a failing server: ask again at once. Quick failures still back off.
      if (isProxyCut(e) && Date.now() - startedAt > PROXY_CUT_AFTER_MS) {
        // Or the server gone while it held us, with every other client it held: spread as it asked.
        const held = chunked ? "chunked" : "long-poll";
        reportFallback(this.host, { from: held, to: held, reason: "proxy-cut", seconds: (Date.now() - startedAt) / 1000 });
        this.cutAfterWorking();
        this.activity(true);
      } else this.httpError(e);
    }
  }

  protected disconnect(): void {
    this.quiet();
    clearTimeout(this.firstChunk);
    this.ac?.abort();
    this.ac = undefined;
  }

  protected dead(): void {
    // A held poll carries no heartbeat: silence this long is a server holding longer than we
    // expected or a connection lost without a word. Either way, ask again at once; a lost network
    // then fails fast and backs off.
    this.refresh();
  }
}

const PROXY_CUT_AFTER_MS = 1000;

function isProxyCut(e: unknown): boolean {
  if (e instanceof HttpError) return e.status === 502 || e.status === 504;
  return e instanceof TypeError; // fetch's network error: the connection was dropped
}
