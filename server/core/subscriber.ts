import type { StatusData } from "../../src/envelope.js";
import type { Backend } from "./backend.js";
import { CatchUp } from "./catch-up.js";
import { allowed, type Identity } from "./targeting.js";
import type { Outgoing } from "./outgoing.js";
import { Positions } from "./positions.js";
import type { Tally } from "./tally.js";

import type { TransportKind } from "./kinds.js";
export type { TransportKind } from "./kinds.js";

/** What a subscriber needs of the hub it belongs to (the hub implements it; neither writes the other's fields). */
export interface SubscriberHost {
  /** Registers the subscriber (and, for live messages, these channels). */
  add(sub: Subscriber, channels: readonly string[]): void;
  /** Unregisters it from these channels, and with `all` from the hub. */
  remove(sub: Subscriber, channels: readonly string[], all: boolean): void;
  /** It has messages pending: flush it at the next tick. */
  markDirty(sub: Subscriber): void;
  /** Where what happens is counted (the metrics read it). */
  readonly tally: Tally;
}

/** One page of a catch-up, as a transport writes it. */
export interface CatchUpPage {
  cu: CatchUp;
  messages: Outgoing[];
  /** Channels found reset since the last page (with the first: another epoch, trimmed, past the end). */
  reset: string[];
  first: boolean;
  /** The catch-up is complete with this page: its closing status is due. */
  last: boolean;
}

/** How a transport takes part in the subscribe lifecycle. */
export interface CatchUpWriter {
  /** The catch-up is open (positions decided, first pages read): a stream may start its response. */
  begin?(cu: CatchUp): void;
  /** Writes a page; may wait for the client to take it (a slow client is cut by the transport). */
  page(p: CatchUpPage): void | Promise<void>;
}

/** How long a store outage keeps a server-side subscriber's catch-up waiting between attempts. */
const RETRY_MS = [100, 250, 500, 1000, 2000, 5000];

/**
 * One connection's (or server-side callback's) view of the bus: channel → position, and the
 * messages due to it. Registered in the hub before its backlog is read; live messages that arrive
 * meanwhile wait in `early` and are replayed through the same position check, so nothing is lost or doubled.
 */
export abstract class Subscriber {
  abstract readonly kind: TransportKind;
  /** channel → last message id delivered or passed over; a channel is live once it has a position. */
  readonly positions = new Positions();
  private loading = 0;
  private early: Outgoing[] | null = null;
  /** A reset that came while loading, told at `endLoading` (the transport cannot write before). */
  private resetWhileLoading?: string;
  /**
   * Messages due at the next flush; the hub flushes once per tick, so a burst becomes one write.
   * Null while none are: an idle connection keeps no empty array.
   */
  private pending: Outgoing[] | null = null;
  closed = false;

  constructor(
    readonly hub: SubscriberHost,
    readonly who: Identity,
  ) {}

  /** The hub's flush: the messages due, taken (none for a closed subscriber). */
  takePending(): Outgoing[] | null {
    const batch = this.pending;
    if (!batch?.length || this.closed) return null;
    this.pending = null;
    return batch;
  }

  /** Cut for being too slow (the transport closes it): counted. */
  protected tooSlow(): void {
    this.hub.tally.slowCuts[this.kind]++;
  }

  /** Leaves these channels, or with none given every channel and the hub. */
  protected leave(channels?: readonly string[]): void {
    const list = channels ?? [...this.positions.keys()];
    this.hub.remove(this, list, channels === undefined);
    for (const ch of list) this.positions.delete(ch);
  }

  /** Called by the hub for every live message on one of this subscriber's channels. */
  offer(o: Outgoing): void {
    if (this.loading) {
      (this.early ??= []).push(o);
      return;
    }
    const pos = this.positions.get(o.channel);
    if (pos === undefined || o.id <= pos) return;
    this.positions.set(o.channel, o.id);
    if (o.targeted && !allowed(o.message, this.who)) return;
    if ((this.pending ??= []).push(o.targeted ? o.for(this.who) : o) === 1) this.hub.markDirty(this);
  }

  /**
   * The subscribe lifecycle, the same for every transport: registered for live messages first, then
   * the backlog read and handed to `writer` page by page (about `pageBytes` each, so a slow client
   * never makes the server hold the whole backlog), then the positions settled and whatever arrived
   * meanwhile let through, each message once. With `retry`, a store outage is waited out (a
   * server-side subscriber has nobody to report to); otherwise its error is the caller's to answer.
   */
  async load(
    backend: Backend,
    asked: Map<string, number>,
    clientEpoch: string | undefined,
    writer: CatchUpWriter,
    { pageBytes, retry }: { pageBytes: number; retry?: (e: unknown, attempt: number) => void },
  ): Promise<void> {
    // Gone before it began (the client left while its stream opened): nothing to register.
    if (this.closed) return;
    this.register(asked.keys());
    try {
      let from = asked;
      let epoch = clientEpoch;
      let begun = false;
      for (let attempt = 0; ; attempt++) {
        let cu: CatchUp | undefined;
        try {
          cu = await CatchUp.open(backend, from, epoch, this.who);
          if (this.closed) return;
          if (!begun) writer.begin?.(cu);
          for (let first = !begun; !this.closed && this.resetWhileLoading === undefined; first = false) {
            begun = true;
            const { messages, reset } = await cu.next(pageBytes);
            if (this.closed) return;
            await writer.page({ cu, messages, reset, first, last: cu.done });
            if (cu.done) break;
          }
          this.hub.tally.caughtUp(this.kind, asked.values(), cu.resetReasons);
          // A reset while loading voids these positions: every channel starts over at 0 (endLoading).
          if (this.resetWhileLoading === undefined) this.settle(cu.positions);
          return;
        } catch (e) {
          if (!retry || this.closed) throw e;
          retry(e, attempt);
          // Go on from where the pages already delivered left each channel, in the epoch they belong to.
          if (cu) [from, epoch] = [cu.positions, cu.epoch];
          await new Promise((r) => setTimeout(r, RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]));
          if (this.closed) return;
        }
      }
    } finally {
      this.endLoading();
    }
  }

  /**
   * Registers channels in the hub before their backlog is read; live messages for any channel are
   * held back until the matching `endLoading`.
   */
  register(channels: Iterable<string>): void {
    this.loading++;
    const list = [...channels];
    for (const ch of list) this.positions.set(ch, Number.POSITIVE_INFINITY);
    this.hub.add(this, list);
  }

  /** Takes the positions a catch-up arrived at. */
  settle(positions: Map<string, number>): void {
    for (const [ch, pos] of positions) if (this.positions.has(ch)) this.positions.set(ch, pos);
  }

  endLoading(): void {
    if (--this.loading > 0) return;
    if (this.resetWhileLoading !== undefined && !this.closed) {
      // Every channel stands at 0 in the new epoch; what was published in it since comes next, from `early`.
      const data: StatusData = { __epoch: this.resetWhileLoading, __reset: [...this.positions.keys()] };
      for (const [ch, pos] of this.positions) data[ch] = pos;
      this.resetWhileLoading = undefined;
      this.send([], data);
    }
    this.resetWhileLoading = undefined;
    if (!this.early) return;
    const early = this.early;
    this.early = null;
    for (const o of early) this.offer(o);
  }

  /** The backend's ids restarted: every channel starts over at 0 and the client is told. */
  resetEpoch(epoch: string): void {
    if (this.loading) {
      // The transport may have nothing to write to yet (no response, no stream): calling send() here
      // crashed. Live messages held so far are the old epoch's; the catch-up under way stops, and
      // `endLoading` tells the client and lets through what the new epoch brought meanwhile.
      for (const ch of this.positions.keys()) this.positions.set(ch, 0);
      this.early = null;
      this.pending = null;
      this.resetWhileLoading = epoch;
      return;
    }
    const data: StatusData = { __epoch: epoch, __reset: [...this.positions.keys()] };
    this.hub.tally.resets["bus-reset"] += this.positions.size;
    for (const ch of this.positions.keys()) {
      this.positions.set(ch, 0);
      data[ch] = 0;
    }
    this.pending = null;
    this.send([], data);
  }

  /** Writes a batch (and optionally a status) to the client in one go. */
  abstract send(batch: Outgoing[], status: StatusData | null): void;

  /** Streams get a heartbeat from the hub's shared timer. */
  heartbeat(): void {}

  /** Every second: a stream tells its client again what changed since (the spread hint), if anything did. */
  retell(): void {}

  /** Ends the connection (a replaced long-poll, a refused subscribe). */
  abstract close(): void;

  /**
   * This server is going away (a drain, a shutdown): the client is told to reconnect within `hintMs`
   * and the connection is closed, so that a load balancer sends it to another process. It resumes
   * from its positions and loses nothing.
   */
  abstract move(hintMs: number): void;
}
