import { isStatus } from "../../src/envelope.js";
import { spreadHeader } from "../hints.js";
import { postSubscription } from "../http.js";
import { askedRecently, waitBeforeLookingAgain } from "../last-request.js";
import { BaseTransport, isMessageArray } from "./base.js";

/**
 * `POST …/poll?dlp=t`, answered at once; asked again at callbackInterval (backgroundCallbackInterval
 * in the background, where the tabs of an origin also take turns: minHiddenPollInterval).
 */
export class PollTransport extends BaseTransport {
  readonly name = "poll";
  private ac?: AbortController;

  protected connect(): void {
    if (this.host.background() && askedRecently(this.host.options.minHiddenPollInterval)) {
      // Another tab (or this one) asked a moment ago: look again soon, as message-bus-client does.
      return this.later(waitBeforeLookingAgain());
    }
    const gen = ++this.gen;
    const ac = (this.ac = new AbortController());
    const sentEpoch = this.host.epoch;
    const startedAt = Date.now();
    this.alive(gen);
    postSubscription(this.host, this.host.url("poll") + "?dlp=t", this.host.subscription(), ac.signal)
      .then((res) => {
        spreadHeader(this.host, res);
        return res.text();
      })
      .then((text) => {
        if (!this.current(gen)) return;
        this.quiet();
        this.host.stats.frames++;
        this.host.stats.bytes += text.length;
        const batch: unknown = JSON.parse(text);
        if (!isMessageArray(batch)) throw new Error("poll answer is not an array");
        this.failures = 0;
        this.host.receive(batch, sentEpoch);
        if (!this.current(gen)) return;
        this.events.up(this);
        // Maybe live again (shouldLongPollCallback): then this transport is stopped here.
        this.activity(true);
        if (!this.current(gen)) return;
        const o = this.host.options;
        const background = this.host.background();
        // message-bus-client: straight on after data while visible, else one request per interval.
        const interval = background ? o.backgroundCallbackInterval : o.callbackInterval;
        const got = batch.some((m) => !isStatus(m));
        this.later(got && !background ? o.minPollInterval : Math.max(o.minPollInterval, interval - (Date.now() - startedAt)));
      })
      .catch((e) => {
        if (this.current(gen)) this.httpError(e);
      });
  }

  protected disconnect(): void {
    this.quiet();
    this.ac?.abort();
    this.ac = undefined;
  }

  protected dead(): void {
    this.httpError(new Error("poll timed out"));
  }
}
