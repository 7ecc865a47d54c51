import type { ResetReason } from "./tally.js";
import type { StatusData } from "../../src/envelope.js";
import type { Backend, StoredMessage } from "./backend.js";
import { allowed, type Identity } from "./targeting.js";
import { Outgoing } from "./outgoing.js";

/** Messages read from the store per channel and round trip: what one catch-up holds at a time. */
const READ_PAGE = 256;

interface ChannelCursor {
  channel: string;
  /** What the client asked for (-1, -N, k). */
  asked: number;
  /** The last message id passed (delivered or filtered). */
  pos: number;
  /** The last message id delivered to this client. */
  delivered: number;
  /** The channel's last id when the catch-up began: nothing past it needs reading (it comes live). */
  last: number;
  /** The next messages, read ahead of the merge. */
  buffer: StoredMessage[];
  exhausted: boolean;
  /** A message must follow `pos` without a hole (the client knows the ids before it). */
  continuous: boolean;
}

/**
 * What a subscriber is owed from the backlog (docs/protocol.md#4-positions-and-delivery), read after
 * it was registered for live messages, one page at a time (#5-catch-up-in-pages): a slow client never makes the server hold (or read) the whole backlog at once.
 *
 * Positions: -1 new only (told the current id), -N the last N-1, k >= 0 everything after k, k beyond
 * the end means the bus was reset (treated as -1, told). A client from another epoch gets the new
 * epoch's whole backlog. A gap in what it asked for (trimmed before the client read it, even in the
 * middle of a catch-up) is reported as a reset of that channel, never hidden.
 */
export class CatchUp {
  readonly epoch: string;
  /** Whether the client's epoch was absent-but-asked-for or different: it must be told the epoch. */
  readonly tellEpoch: boolean;
  /** Channels whose asked position could not be honoured, in the order they were found. */
  readonly reset: string[] = [];
  /** Why each of `reset` was (the metrics count them). */
  readonly resetReasons: ResetReason[] = [];
  /** Where each channel started (an SSE stream's first event). */
  readonly start = new Map<string, number>();
  private readonly told = new Set<string>();
  private readonly cursors: ChannelCursor[] = [];
  /** Resets not yet handed out with a page. */
  private freshResets: string[] = [];
  private finished = false;

  private constructor(
    private readonly backend: Backend,
    private readonly who: Identity,
    epoch: string,
    clientEpoch: string | undefined,
  ) {
    this.epoch = epoch;
    this.tellEpoch = clientEpoch !== undefined && clientEpoch !== epoch;
  }

  /**
   * Reads where every channel stands and decides where each one starts. A reset between the
   * snapshot and the backlog reads would mix two epochs: read again (at most three times).
   */
  static async open(backend: Backend, asked: Map<string, number>, clientEpoch: string | undefined, who: Identity): Promise<CatchUp> {
    for (let attempt = 1; ; attempt++) {
      const cu = await CatchUp.openOnce(backend, asked, clientEpoch, who);
      // The first pages are read now, so a reset that lands meanwhile is seen here, not mid-delivery.
      await cu.fill();
      if (cu.epoch === backend.epoch || attempt >= 3) return cu;
    }
  }

  private static async openOnce(backend: Backend, asked: Map<string, number>, clientEpoch: string | undefined, who: Identity): Promise<CatchUp> {
    const snap = await backend.snapshot(asked.keys());
    const cu = new CatchUp(backend, who, snap.epoch, clientEpoch);
    const otherEpoch = clientEpoch !== undefined && clientEpoch !== "" && clientEpoch !== snap.epoch;
    for (const [channel, want] of asked) {
      const last = snap.lastIds.get(channel) ?? 0;
      let from: number;
      let continuous = false;
      if (want === -1) {
        from = last;
        cu.told.add(channel);
      } else if (want < -1) {
        from = Math.max(0, last + want + 1);
      } else if (otherEpoch) {
        from = 0;
        continuous = true;
        cu.markReset(channel, "epoch");
      } else if (want > last) {
        from = last;
        cu.markReset(channel, "past-end");
      } else {
        from = want;
        continuous = true;
      }
      cu.start.set(channel, from);
      cu.cursors.push({ channel, asked: want, pos: from, delivered: from, last, buffer: [], exhausted: from >= last, continuous });
    }
    return cu;
  }

  /** True once every channel has been read to where it stood when the catch-up began. */
  get done(): boolean {
    return this.finished;
  }

  /** Where each channel stands after what has been handed out (filtered entries included). */
  get positions(): Map<string, number> {
    return new Map(this.cursors.map((c) => [c.channel, c.pos]));
  }

  /**
   * The next messages this client may see, in global order, about `maxBytes` of JSON (at least one
   * message when any is due), and the channels found reset since the last call.
   */
  async next(maxBytes: number): Promise<{ messages: Outgoing[]; reset: string[] }> {
    const messages: Outgoing[] = [];
    let bytes = 0;
    while (bytes < maxBytes) {
      await this.fill();
      let head: ChannelCursor | undefined;
      for (const c of this.cursors) {
        if (c.buffer.length && (!head || c.buffer[0].global_id < head.buffer[0].global_id)) head = c;
      }
      if (!head) {
        this.finished = true;
        break;
      }
      const m = head.buffer.shift()!;
      head.pos = m.message_id;
      if (!allowed(m, this.who)) continue;
      head.delivered = m.message_id;
      const o = Outgoing.of(m).for(this.who);
      messages.push(o);
      bytes += o.bytes;
    }
    const reset = this.freshResets;
    this.freshResets = [];
    return { messages, reset };
  }

  /** Reads the next page of every channel whose read-ahead ran out. */
  private async fill(): Promise<void> {
    for (const c of this.cursors) {
      if (c.buffer.length || c.exhausted) continue;
      const page = await this.backend.backlog(c.channel, c.pos, READ_PAGE);
      // Trimmed or expired before this client read it: say so, and go on from what is left. When
      // nothing is left at all, the channel stands at its last id (told, as for filtered entries).
      const first = page.length ? page[0].message_id : c.last + 1;
      if (first > c.pos + 1 && c.continuous) this.markReset(c.channel, "trimmed");
      if (!page.length && c.pos < c.last) c.pos = c.last;
      c.continuous = true;
      c.buffer = page;
      c.exhausted = page.length < READ_PAGE || page[page.length - 1].message_id >= c.last;
    }
  }

  private markReset(channel: string, why: ResetReason): void {
    this.told.add(channel);
    if (this.reset.includes(channel)) return;
    this.reset.push(channel);
    this.resetReasons.push(why);
    this.freshResets.push(channel);
  }

  /**
   * The `/__status` of a catch-up answered in one piece (a poll), or null when there is nothing to
   * say: where channels stand that were asked at -1, reset, or advanced past entries this client may
   * not see; the epoch when the client's was another; every reset. An answer cut short (`done`
   * false) also names where the channels asked at -N stand, so the next poll goes on from there.
   */
  status(): StatusData | null {
    const data = this.toldPositions();
    if (this.tellEpoch) data.__epoch = this.epoch;
    if (this.reset.length) data.__reset = [...this.reset];
    return Object.keys(data).length ? data : null;
  }

  /**
   * Where the channels asked at -1 or -N start, known from the first page on: a stream tells them
   * at once, so a client cut before the last page still knows where it stands.
   */
  startPositions(): StatusData {
    const data: StatusData = {};
    for (const c of this.cursors) if (c.asked < 0) data[c.channel] = this.start.get(c.channel);
    return data;
  }

  /** The positions the client must be told (see `status`), without the epoch and resets. */
  toldPositions(): StatusData {
    const data: StatusData = {};
    for (const c of this.cursors) {
      if (this.told.has(c.channel) || c.delivered !== c.pos || (!this.finished && c.asked < -1)) data[c.channel] = c.pos;
    }
    return data;
  }
}
