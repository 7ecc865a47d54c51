import type { Reply } from "../../src/request.js";
import { subscriptionBody } from "../../src/subscription.js";
import { Subscriptions } from "../subscriptions.js";
import type { ClientOptions, Host, Message, Stats } from "../types.js";

/** What the connection's host needs from the tab that holds it. */
export interface WireOwner {
  readonly options: ClientOptions;
  readonly stats: Stats;
  url(what: "poll" | "sse" | "ws" | "request"): string;
  reply(r: Reply): void;
  socketClosed(): void;
}

/** Most client ids one connection speaks for besides its own: the server's default `maxSharedClients`. */
export const MAX_SHARED_CLIENTS = 32;

/**
 * The host of the one connection the leader tab holds for every tab: the union of their channels,
 * the client ids it speaks for (`__clients`, docs/protocol.md#14-shared-connections), its own
 * positions (where the connection stands) and, until the next answer, floors: lower positions a tab
 * that just joined needs the server to go back to.
 */
export class WireHost implements Host {
  readonly subs = new Subscriptions();
  chunkedBackoff = 0;
  spreadMs = 0;
  clients: string[] = [];
  /** Why the shared connection last left a transport, for its next subscribe request (docs/protocol.md#13-fallback-reports). */
  fallback: string | null = null;
  private floors = new Map<string, number>();
  /** Set when the connection is about to start again: its first answer spends the floors. */
  private armed = false;
  private floorsAsked = false;

  constructor(
    private readonly owner: WireOwner,
    private readonly route: (batch: Message[], sentEpoch: string) => void,
    private readonly anyLive: () => boolean,
  ) {}

  get options(): ClientOptions {
    return this.owner.options;
  }

  get stats(): Stats {
    return this.owner.stats;
  }

  get epoch(): string {
    return this.subs.epoch;
  }

  /** Asks the server to go back to `pos` on `channel` with the next connection. */
  floor(channel: string, pos: number): void {
    const f = this.floors.get(channel);
    if (f === undefined || pos < f) this.floors.set(channel, pos);
  }

  /** The connection starts again now: the floors are for its first request. */
  arm(): void {
    this.armed = this.floors.size > 0;
    this.floorsAsked = false;
  }

  url(what: "poll" | "sse" | "ws" | "request"): string {
    return this.owner.url(what);
  }

  subscription(): Record<string, number | string> {
    const positions = new Map(this.subs.positions);
    for (const [ch, f] of this.floors) {
      const pos = positions.get(ch);
      if (pos !== undefined && pos >= 0 && f < pos) positions.set(ch, f);
    }
    if (this.armed) this.floorsAsked = true;
    // `__clients` always goes, "" too: the server then names the addressees of every client-targeted message.
    return subscriptionBody(positions, { epoch: this.subs.epoch, clients: this.clients.slice(0, MAX_SHARED_CLIENTS) });
  }

  channels(): string[] {
    return this.subs.channels();
  }

  background(): boolean {
    return !this.anyLive();
  }

  receive(batch: Message[], sentEpoch: string): void {
    // The first answer to the restarted connection, which asked with the floors: they are spent.
    if (this.floorsAsked) {
      this.floors.clear();
      this.armed = this.floorsAsked = false;
    }
    this.subs.take(batch, sentEpoch, () => {});
    this.route(batch, sentEpoch);
  }

  reply(r: Reply): void {
    this.owner.reply(r);
  }

  socketClosed(): void {
    this.owner.socketClosed();
  }
}
