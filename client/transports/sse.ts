import { createParser } from "eventsource-parser";
import { HttpError, postSubscription, readText } from "../http.js";
import type { Message } from "../types.js";
import { BaseTransport } from "./base.js";

/** A stream that ends sooner than this after it opened counts towards a loop. */
const QUICK_CUT_MS = 1000;

/**
 * `POST …/sse` read with fetch and eventsource-parser, so the client sends its own headers and
 * resumes from exactly the positions it holds. A stream that ends after it worked is a proxy's cut
 * and is resumed at once; one that never sends its first event in time is taken as buffered.
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
    const ac = (this.ac = new AbortController());
    const sentEpoch = this.host.epoch;
    const startedAt = Date.now();
    let opened = false;
    this.firstEvent = setTimeout(() => {
      if (this.current(gen)) this.give(`no first event within ${this.host.options.firstChunkTimeout} ms (buffered)`, true);
    }, this.host.options.firstChunkTimeout);
    const parser = createParser({
      onEvent: (ev) => {
        this.host.stats.frames++;
        const m = JSON.parse(ev.data) as Message;
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
      this.alive(gen);
      await readText(res, this.host, ac.signal, (text) => {
        if (!this.current(gen)) return false;
        this.alive(gen);
        parser.feed(text);
        if (!this.current(gen)) return false;
        // Heartbeats too: a hidden tab's timers may be throttled, its stream is not.
        this.activity(false);
        if (!this.current(gen)) return false;
      });
      if (!this.current(gen)) return;
      if (!opened) return this.give("stream ended before its first event");
      // Ended without a reason: a proxy's read timeout. Resume at once from the positions held;
      // streams that keep ending as soon as they open are resumed ever later, never in a hot loop.
      const o = this.host.options;
      this.quickCuts = Date.now() - startedAt < QUICK_CUT_MS ? this.quickCuts + 1 : 0;
      this.quiet();
      this.gen++;
      this.disconnect();
      if (this.quickCuts > 1) this.later(Math.min(o.maxPollInterval, o.minPollInterval * 2 ** Math.min(this.quickCuts, 16)));
      else this.connect();
    } catch (e) {
      if (!this.current(gen)) return;
      this.give(e instanceof Error ? e.message : String(e), false, e instanceof HttpError ? e.retryAfter : null);
    }
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
