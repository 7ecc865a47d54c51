import type { Message, TransportName } from "../types.js";
import { Follower } from "./follower.js";
import { Leader, type TabLink, type TransportMaker } from "./leader.js";
import { tabNames, type TabNames, type ToLeader, type ToTab, type ToTabs } from "./tab-protocol.js";
import type { WireOwner } from "./wire.js";

/** What tab sharing needs from the tab's own bus. */
export interface SharingBus extends WireOwner {
  readonly clientId: string;
  /** Where this tab stands: its channels' positions, their epoch, and whether it wants the bus live. */
  tabState(): { positions: [string, number][]; epoch: string; live: boolean };
  receive(batch: Message[], sentEpoch: string): void;
  switched(name: TransportName | null): void;
}

type Locks = {
  request(name: string, opts: { signal?: AbortSignal }, cb: () => Promise<unknown> | unknown): Promise<unknown>;
};
const locks = (): Locks => (navigator as unknown as { locks: Locks }).locks;

/**
 * One tab's part in sharing a bus with the other tabs of its origin (README, "Tabs"). Every tab holds
 * a lock of its own while it runs (so that the leader learns when it is gone, even by a crash) and
 * queues for the bus's leader lock; until granted it is a follower, then the leader, until it stops
 * or its page goes and the browser hands the lock to the next tab.
 */
export class TabShare {
  private readonly names: TabNames;
  private readonly ac = new AbortController();
  private follower: Follower | null = null;
  private leader: Leader | null = null;
  private all?: BroadcastChannel;
  private links = new Map<string, { link: TabLink; bc: BroadcastChannel; ac: AbortController }>();
  private release: (() => void)[] = [];
  private readonly onPageHide = () => this.follower?.close(true);

  constructor(
    private readonly bus: SharingBus,
    key: string,
    private readonly create: TransportMaker,
  ) {
    this.names = tabNames(key);
    const id = bus.clientId;
    // A leader takes a tab for gone when its lock comes free: so the tab speaks only once it holds it.
    this.hold(this.names.tabLock(id), () => {
      this.follower = new Follower(id, this.names, () => ({ t: "state", tab: id, ...bus.tabState() }), (m) => this.fromLeader(m));
      this.hold(this.names.leaderLock, () => this.lead());
    });
    addEventListener("pagehide", this.onPageHide);
  }

  /** The socket of the connection this tab holds, if it leads; requests go on it. */
  get negotiator() {
    return this.leader?.negotiator ?? null;
  }

  get leading(): boolean {
    return this.leader !== null;
  }

  changed(): void {
    if (this.leader) this.leader.state(this.localLink(), ...this.stateArgs());
    else this.follower?.changed();
  }

  stop(): void {
    removeEventListener("pagehide", this.onPageHide);
    this.ac.abort();
    this.follower?.close(true);
    this.follower = null;
    this.leader?.stop();
    this.leader = null;
    this.all?.close();
    for (const l of this.links.values()) {
      l.ac.abort();
      l.bc.close();
    }
    this.links.clear();
    for (const r of this.release) r();
    this.release = [];
  }

  /** Takes a lock and keeps it until stop (or the page goes); `granted` runs once it is ours. */
  private hold(name: string, granted: () => void): void {
    locks()
      .request(name, { signal: this.ac.signal }, () => {
        if (this.ac.signal.aborted) return;
        granted();
        return new Promise<void>((resolve) => this.release.push(resolve));
      })
      .catch(() => {
        // Aborted by stop before it was granted.
      });
  }

  private stateArgs(): [positions: [string, number][], epoch: string, live: boolean] {
    const s = this.bus.tabState();
    return [s.positions, s.epoch, s.live];
  }

  private fromLeader(m: ToTab): void {
    if (m.t === "batch") this.bus.receive(m.messages, m.sentEpoch);
    else this.bus.switched(m.name);
  }

  private localLink(): TabLink {
    return { id: this.bus.clientId, send: (m) => this.fromLeader(m) };
  }

  private lead(): void {
    this.follower?.close(false);
    this.follower = null;
    const leader = (this.leader = new Leader(this.bus.clientId, this.bus, this.create, () => this.bus.tabState().live));
    leader.state(this.localLink(), ...this.stateArgs());
    const all = (this.all = new BroadcastChannel(this.names.all));
    all.onmessage = (ev: MessageEvent<ToLeader | ToTabs>) => {
      const m = ev.data;
      if (m.t === "state") leader.state(this.remoteLink(m.tab), m.positions, m.epoch, m.live);
      else if (m.t === "bye") this.forget(m.tab);
    };
    all.postMessage({ t: "leader", tab: this.bus.clientId } satisfies ToTabs);
  }

  private remoteLink(id: string): TabLink {
    let l = this.links.get(id);
    if (!l) {
      const bc = new BroadcastChannel(this.names.tab(id));
      const ac = new AbortController();
      l = { link: { id, send: (m) => bc.postMessage(m) }, bc, ac };
      this.links.set(id, l);
      // Its lock comes free when the tab stops, closes or crashes: then it is gone.
      locks()
        .request(this.names.tabLock(id), { signal: ac.signal }, () => this.forget(id))
        .catch(() => {});
    }
    return l.link;
  }

  private forget(id: string): void {
    const l = this.links.get(id);
    if (!l) return;
    this.links.delete(id);
    l.ac.abort();
    l.bc.close();
    this.leader?.drop(id);
  }
}
