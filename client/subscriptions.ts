import { isStatus, type StatusData } from "../src/envelope.js";
import { subscriptionBody } from "../src/subscription.js";
import type { Callback, Message } from "./types.js";

interface Entry {
  channel: string;
  func: Callback;
}

/**
 * The one subscription state every transport shares: channel → position (last message_id delivered
 * or passed over) and the epoch those positions belong to. Whatever transport a batch came on, it goes
 * through the same rule, so a switch or an overlap neither loses nor doubles a message.
 */
export class Subscriptions {
  readonly callbacks: Entry[] = [];
  readonly positions = new Map<string, number>();
  epoch = "";

  add(channel: string, func: Callback, lastId: number): void {
    // A second callback on a channel shares its position: it joins the stream where it stands.
    if (!this.positions.has(channel)) this.positions.set(channel, lastId);
    this.callbacks.push({ channel, func });
  }

  /** message-bus-client's rule: a trailing `*` is a prefix; `func` narrows to one callback. */
  remove(pattern: string, func?: Callback): boolean {
    const glob = pattern.endsWith("*");
    const prefix = glob ? pattern.slice(0, -1) : pattern;
    let removed = false;
    for (let i = this.callbacks.length - 1; i >= 0; i--) {
      const c = this.callbacks[i];
      const hit = glob ? c.channel.startsWith(prefix) : c.channel === prefix;
      if (hit && (!func || c.func === func)) {
        this.callbacks.splice(i, 1);
        removed = true;
      }
    }
    for (const ch of [...this.positions.keys()]) {
      if (!this.callbacks.some((c) => c.channel === ch)) this.positions.delete(ch);
    }
    return removed;
  }

  channels(): string[] {
    return [...this.positions.keys()];
  }

  body(): Record<string, number | string> {
    // The epoch always goes, empty at first, so the server names its epoch and a restart is noticed.
    return subscriptionBody(this.positions, { epoch: this.epoch });
  }

  /**
   * The batch rule: resets first, then every message past its channel's position (anything at or
   * below it is a replay and dropped), then the positions the status names. Returns what is due.
   */
  take(batch: Message[], sentEpoch: string, onReset: (channel: string) => void): Message[] {
    const statuses: StatusData[] = [];
    const reset = new Set<string>();
    for (const m of batch) {
      if (!isStatus(m)) continue;
      const data: StatusData = m.data ?? {};
      statuses.push(data);
      const epoch = typeof data.__epoch === "string" ? data.__epoch : undefined;
      // A connection opened before we learnt this epoch repeats a reset another one already brought.
      const stale = epoch !== undefined && epoch === this.epoch && sentEpoch !== this.epoch;
      if (Array.isArray(data.__reset) && !stale) {
        for (const ch of data.__reset) {
          if (!this.positions.has(ch) || reset.has(ch)) continue;
          reset.add(ch);
          this.positions.set(ch, 0);
          onReset(ch);
        }
      }
      if (epoch) this.epoch = epoch;
    }
    const due: Message[] = [];
    const delivered = new Set<string>();
    for (const m of batch) {
      if (isStatus(m)) continue;
      const pos = this.positions.get(m.channel);
      if (pos === undefined || !(m.message_id > pos)) continue;
      this.positions.set(m.channel, m.message_id);
      delivered.add(m.channel);
      due.push(m);
    }
    for (const data of statuses) {
      for (const ch in data) {
        const v = data[ch];
        const pos = this.positions.get(ch);
        if (ch.startsWith("__") || typeof v !== "number" || pos === undefined) continue;
        // A reset channel takes the server's word even when it is lower, but never below what
        // this very batch delivered after the reset.
        if (v > pos || (reset.has(ch) && !delivered.has(ch))) this.positions.set(ch, v);
      }
    }
    return due;
  }
}
