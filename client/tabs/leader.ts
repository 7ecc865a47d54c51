import { isStatus, statusMessage } from "../../src/envelope.js";
import { Negotiator } from "../negotiate.js";
import { Subscriptions } from "../subscriptions.js";
import type { Host, Message, Transport, TransportEvents, TransportName } from "../types.js";
import type { ToTab } from "./tab-protocol.js";
import { WireHost, type WireOwner } from "./wire.js";

/** A tab as the leader sees it: where it stands (a mirror of its positions) and how to reach it. */
export interface TabLink {
  readonly id: string;
  send(m: ToTab): void;
}

interface Tab {
  link: TabLink;
  /** The positions of what the leader handed this tab: the same rule as the tab's own, so it gets each message once. */
  mirror: Subscriptions;
  live: boolean;
  /** Channels asked before the connection knew where it stands on them: joined once it does. */
  waiting: Map<string, number>;
}

export type TransportMaker = (host: Host, name: TransportName, events: TransportEvents) => Transport;

/** Tab joins that come close together (a new leader hearing from every tab) make one reconnection. */
const RESTART_COALESCE_MS = 20;

/**
 * The leader tab's side (README, "Tabs"): one connection for every tab of the bus, each tab's
 * batches narrowed to its channels, its positions and the messages it may see (a message naming
 * `client_ids` goes to those tabs only). A tab joining a channel behind where the connection stands
 * makes the connection go back (a floor) and reconnect; the tabs ahead drop the replay, by position.
 */
export class Leader {
  readonly wire: WireHost;
  readonly negotiator: Negotiator;
  private readonly tabs = new Map<string, Tab>();
  private current: TransportName | null = null;
  private restartTimer?: ReturnType<typeof setTimeout>;
  private syncQueued = false;
  /**
   * A new leader first hears where every tab stands (they answer its announcement at once), so
   * that its first connection starts from all of them, instead of connecting and then again.
   */
  private collecting = true;

  constructor(
    private readonly self: string,
    owner: WireOwner,
    create: TransportMaker,
    private readonly localLive: () => boolean,
  ) {
    this.wire = new WireHost(owner, (batch, sentEpoch) => this.route(batch, sentEpoch), () => this.anyLive());
    this.negotiator = new Negotiator(this.wire, (name, events) => create(this.wire, name, events), (name) => this.switched(name));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.collecting = false;
      this.wire.arm();
      this.queueSync();
    }, RESTART_COALESCE_MS);
  }

  get transport(): TransportName | null {
    return this.current;
  }

  /** A tab's whole subscription, as it says it (the leader's own tab included). */
  state(link: TabLink, positions: [string, number][], epoch: string, live: boolean): void {
    let tab = this.tabs.get(link.id);
    if (!tab) {
      tab = { link, mirror: new Subscriptions(), live, waiting: new Map() };
      tab.mirror.epoch = epoch;
      this.tabs.set(link.id, tab);
      // The connection starts from the leader's own positions, so from the epoch they belong to.
      if (link.id === this.self) this.wire.subs.epoch = epoch;
      if (link.id !== this.self) this.wire.clients = [...this.tabs.keys()].filter((id) => id !== this.self);
      link.send({ t: "transport", name: this.current });
    }
    tab.live = live;
    const want = new Map(positions);
    for (const ch of [...tab.mirror.positions.keys()]) if (!want.has(ch)) tab.mirror.positions.delete(ch);
    for (const ch of [...tab.waiting.keys()]) if (!want.has(ch)) tab.waiting.delete(ch);
    for (const [ch, pos] of want) if (!tab.mirror.positions.has(ch) && !tab.waiting.has(ch)) this.join(tab, ch, pos);
    this.queueSync();
    this.negotiator.checkMode();
  }

  /** The tab is gone (said so, or its lock came free): its channels and client id leave. */
  drop(id: string): void {
    if (id === this.self || !this.tabs.delete(id)) return;
    this.wire.clients = this.wire.clients.filter((c) => c !== id);
    this.queueSync();
    this.negotiator.checkMode();
  }

  stop(): void {
    clearTimeout(this.restartTimer);
    this.negotiator.stop();
  }

  private anyLive(): boolean {
    for (const t of this.tabs.values()) if (t.link.id === this.self ? this.localLive() : t.live) return true;
    return false;
  }

  private join(tab: Tab, ch: string, pos: number): void {
    const at = this.wire.subs.positions.get(ch);
    if (at === undefined) {
      // The first tab on the channel: the connection asks what it asks.
      this.wire.subs.positions.set(ch, pos);
      tab.mirror.positions.set(ch, pos);
      if (tab.link.id !== this.self) this.queueRestart();
      return;
    }
    if (at < 0) {
      // Both "new only": the same answer serves both. Otherwise wait until the connection knows.
      if (pos === at) tab.mirror.positions.set(ch, pos);
      else tab.waiting.set(ch, pos);
      return;
    }
    // "New only" is from where the connection stands; "the last N-1" is counted back from there.
    const from = pos >= 0 ? pos : pos === -1 ? at : Math.max(0, at + pos + 1);
    tab.mirror.positions.set(ch, from);
    if (pos < 0) tab.link.send({ t: "batch", messages: [statusMessage({ [ch]: from })], sentEpoch: this.wire.epoch });
    // Even a tab ahead needs the connection to go back to where it stood when the tab came: messages
    // aimed at its client id were left out until the server heard of it.
    this.wire.floor(ch, Math.min(from, at));
    this.queueRestart();
  }

  private route(batch: Message[], sentEpoch: string): void {
    for (const tab of this.tabs.values()) {
      const mine: Message[] = [];
      for (const m of batch) {
        if (isStatus(m)) mine.push(m);
        else if (!addressed(m) || addressed(m)!.includes(tab.link.id)) mine.push(m);
      }
      const due = tab.mirror.take(mine, sentEpoch, () => {});
      const statuses = mine.filter(isStatus);
      if (due.length || statuses.length) tab.link.send({ t: "batch", messages: [...statuses, ...due], sentEpoch });
    }
    // Joins that waited for the connection to know where it stands.
    for (const tab of this.tabs.values()) {
      for (const [ch, pos] of tab.waiting) {
        if ((this.wire.subs.positions.get(ch) ?? -1) < 0) continue;
        tab.waiting.delete(ch);
        this.join(tab, ch, pos);
      }
    }
  }

  private switched(name: TransportName | null): void {
    this.current = name;
    for (const t of this.tabs.values()) t.link.send({ t: "transport", name });
  }

  /** The connection's channels are the union of the tabs'; none at all and it closes. */
  private queueSync(): void {
    if (this.syncQueued) return;
    this.syncQueued = true;
    queueMicrotask(() => {
      this.syncQueued = false;
      if (this.collecting) return;
      const wanted = new Set<string>();
      for (const t of this.tabs.values()) for (const ch of [...t.mirror.positions.keys(), ...t.waiting.keys()]) wanted.add(ch);
      for (const ch of this.wire.channels()) if (!wanted.has(ch)) this.wire.subs.positions.delete(ch);
      if (!wanted.size) this.negotiator.stop();
      else if (!this.negotiator.running) this.negotiator.start();
      else this.negotiator.refresh();
    });
  }

  private queueRestart(): void {
    if (this.restartTimer !== undefined || this.collecting) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.wire.arm();
      this.negotiator.restart();
    }, RESTART_COALESCE_MS);
  }
}

/** The client ids a message names on a shared connection (docs/protocol.md#14-shared-connections). */
function addressed(m: Message): string[] | undefined {
  const ids = (m as Message & { client_ids?: unknown }).client_ids;
  return Array.isArray(ids) ? (ids as string[]) : undefined;
}
