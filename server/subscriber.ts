import type { StatusData } from "../src/envelope.js";
import { allowed, type Identity } from "./identity.js";
import type { Outgoing } from "./outgoing.js";
import type { Hub } from "./hub.js";

export type TransportKind = "poll" | "long-poll" | "chunked" | "sse" | "websocket" | "server";

/**
 * One connection's (or server-side callback's) view of the bus: channel → position, and the
 * messages due to it. Registered in the hub before its backlog is read; live messages that arrive
 * meanwhile wait in `early` and are replayed through the same position check, so nothing is lost or doubled.
 */
export abstract class Subscriber {
  abstract readonly kind: TransportKind;
  /** channel → last message id delivered or passed over; a channel is live once it has a position. */
  readonly positions = new Map<string, number>();
  private loading = 0;
  private early: Outgoing[] | null = null;
  /** A reset that came while loading, told at `endLoading` (the transport cannot write before). */
  private resetWhileLoading?: string;
  /** Messages due at the next flush; the hub flushes once per tick, so a burst becomes one write. */
  pending: Outgoing[] = [];
  closed = false;

  constructor(
    readonly hub: Hub,
    readonly who: Identity,
  ) {}

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
    if (this.pending.push(o) === 1) this.hub.markDirty(this);
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
    if (this.resetWhileLoading !== undefined) {
      // Channels live before the reset stand at 0; those just loaded where their (retried) catch-up put them.
      const data: StatusData = { __epoch: this.resetWhileLoading, __reset: [...this.positions.keys()] };
      for (const [ch, pos] of this.positions) data[ch] = pos;
      this.resetWhileLoading = undefined;
      this.send([], data);
    }
    if (!this.early) return;
    const early = this.early;
    this.early = null;
    for (const o of early) this.offer(o);
  }

  /** The backend's ids restarted: every channel starts over at 0 and the client is told. */
  resetEpoch(epoch: string): void {
    if (this.loading) {
      // The transport may have nothing to write to yet (no response, no stream): calling send() here
      // crashed. Live messages held so far are the old epoch's; the catch-up under way reads again in
      // the new one (catchUp) and settles the channels it loads.
      for (const ch of this.positions.keys()) this.positions.set(ch, 0);
      this.early = null;
      this.pending = [];
      this.resetWhileLoading = epoch;
      return;
    }
    const data: StatusData = { __epoch: epoch, __reset: [...this.positions.keys()] };
    for (const ch of this.positions.keys()) {
      this.positions.set(ch, 0);
      data[ch] = 0;
    }
    this.pending = [];
    this.send([], data);
  }

  /** Writes a batch (and optionally a status) to the client in one go. */
  abstract send(batch: Outgoing[], status: StatusData | null): void;

  /** Streams get a heartbeat from the hub's shared timer. */
  heartbeat(): void {}

  /** Ends the connection (server shutdown, replaced long-poll). */
  abstract close(): void;
}
