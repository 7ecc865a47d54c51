import { createParser } from "eventsource-parser";
import { isStatus } from "../../src/envelope.js";
import { hintsOf } from "../hints.js";
import { HttpError, postSubscription, readText, reportFallback } from "../http.js";
import type { Message } from "../types.js";
import { BaseTransport } from "./base.js";

/** A stream that ends sooner than this after it opened counts towards a loop. */
const QUICK_CUT_MS = 1000;

/** How far a stream has come while its first event is awaited (docs/protocol.md#64-server-sent-events). */
type Progress = "nothing" | "headers" | "bytes";

/**
 * `POST …/sse` read with fetch and eventsource-parser, so the client sends its own headers and
 * resumes from exactly the positions it holds. A stream that ends after it worked is resumed on
 * this transport (spread as the server asked); one told to move goes within the server's hint; one
 * whose first event does not come in time is taken as buffered unless the server's preamble came.
 */
export class SseTransport extends BaseTransport {
  readonly name = "sse";
  private ac?: AbortController;
  private firstEvent?: ReturnType<typeof setTimeout>;
  /** Streams in a row that ended soon after they opened. */
  private quickCuts = 0;

  protected connect(): void {
    void this.open(++this.gen);
  }

  private async open(gen: number): Promise<void> {
    const o = this.host.options;
    const ac = (this.ac = new AbortController());
    const sentEpoch = this.host.epoch;
    const startedAt = Date.now();
    let opened = false;
    let progress: Progress = "nothing";
    let drain: number | undefined;
    // The server writes its head and a preamble before it reads the backlog. The preamble without an
    // event: a busy server, given as long again before this transport gives way. Nothing, or a head
    // without the preamble: a proxy holds the stream (nginx buffering holds even the head back).
    const deadline = (second: boolean) =>
      setTimeout(() => {
        if (!this.current(gen) || opened) return;
        if (progress !== "bytes") return this.give(`no first event within ${o.firstChunkTimeout} ms (buffered)`, true);
        if (second) return this.give(`no first event within ${2 * o.firstChunkTimeout} ms (server busy)`);
        this.firstEvent = deadline(true);
      }, o.firstChunkTimeout);
    this.firstEvent = deadline(false);
    const parser = createParser({
      onEvent: (ev) => {
        this.host.stats.frames++;
        const m = JSON.parse(ev.data) as Message;
        if (isStatus(m)) {
          const hints = hintsOf([m]);
          if (hints.spread !== undefined) this.host.spreadMs = hints.spread;
          // "Go elsewhere" carries no positions: it says nothing of whether this stream works.
          if (hints.drain !== undefined) return void (drain = hints.drain);
        }
        this.host.receive([m], sentEpoch);
        if (!opened && this.current(gen)) {
          opened = true;
          clearTimeout(this.firstEvent);
          this.failures = 0;
          this.events.up(this);
        }
      },
    });
    try {
      const res = await postSubscription(this.host, this.host.url("sse"), this.host.subscription(), ac.signal, {
        Accept: "text/event-stream",
      });
      if (!this.current(gen)) return;
      if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
        void res.body?.cancel().catch(() => {});
        return this.give("answer is not an event stream");
      }
      progress = "headers";
      this.alive(gen);
      await readText(res, this.host, ac.signal, (text) => {
        if (!this.current(gen)) return false;
        progress = "bytes";
        this.alive(gen);
        parser.feed(text);
        if (!this.current(gen)) return false;
        // Heartbeats too: a hidden tab's timers may be throttled, its stream is not.
        this.activity(false);
        if (!this.current(gen)) return false;
      });
      if (!this.current(gen)) return;
      if (drain !== undefined) return this.moveOn(drain);
      if (!opened) return this.give("stream ended before its first event");
      this.resume(startedAt);
    } catch (e) {
      if (!this.current(gen)) return;
      if (drain !== undefined) return this.moveOn(drain);
      // Overloaded or rate limited, and told when to come back: come back then, on this transport.
      if (e instanceof HttpError && (e.status === 503 || e.status === 429) && e.retryAfter !== null) return this.comeBackAfter(e.retryAfter);
      // A stream that worked and broke (the server died, a proxy dropped it): resumed like one that ended.
      if (opened) return this.resume(startedAt);
      this.give(e instanceof Error ? e.message : String(e), false, e instanceof HttpError ? e.retryAfter : null);
    }
  }

  /**
   * A stream that worked ended without a word: a proxy's read timeout, or the server gone. Resumed
   * from the positions held, spread as the server last asked (near at once for a small server);
   * streams that keep ending as soon as they open are resumed ever later, never in a hot loop.
   */
  private resume(startedAt: number): void {
    const o = this.host.options;
    this.quickCuts = Date.now() - startedAt < QUICK_CUT_MS ? this.quickCuts + 1 : 0;
    reportFallback(this.host, { from: "sse", to: "sse", reason: "proxy-cut", seconds: (Date.now() - startedAt) / 1000 });
    if (this.quickCuts > 1) this.retry(Math.min(o.maxPollInterval, o.minPollInterval * 2 ** Math.min(this.quickCuts, 16)));
    else this.cutAfterWorking();
  }

  /** Gives the negotiator the choice: fall back, or try this again later. */
  private give(why: string, buffered = false, retryAfter: number | null = null): void {
    this.gen++;
    this.disconnect();
    if (buffered) this.host.chunkedBackoff = this.host.options.retryChunkedAfterRequests;
    this.events.fail(this, why, retryAfter ?? undefined);
  }

  protected disconnect(): void {
    this.quiet();
    clearTimeout(this.firstEvent);
    this.ac?.abort();
    this.ac = undefined;
  }

  protected dead(): void {
    this.give("silent for two heartbeats");
  }
}
