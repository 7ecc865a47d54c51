import type { ToLeader, ToTab, ToTabs, TabNames } from "./tab-protocol.js";

/**
 * A tab that does not hold the connection: it tells the leader what it wants (on the bus's channel)
 * and takes what the leader hands it (on its own channel), whoever the leader is at the moment.
 */
export class Follower {
  private readonly all: BroadcastChannel;
  private readonly mine: BroadcastChannel;

  constructor(
    private readonly id: string,
    names: TabNames,
    private readonly state: () => ToLeader & { t: "state" },
    onTab: (m: ToTab) => void,
  ) {
    this.mine = new BroadcastChannel(names.tab(id));
    this.mine.onmessage = (ev: MessageEvent<ToTab>) => onTab(ev.data);
    this.all = new BroadcastChannel(names.all);
    // A new leader asks nothing: it announces itself, and every tab tells it where it stands.
    this.all.onmessage = (ev: MessageEvent<ToLeader | ToTabs>) => {
      if (ev.data.t === "leader") this.changed();
    };
    this.changed();
  }

  /** The subscription or the page's visibility changed (or a leader came): the leader hears it all again. */
  changed(): void {
    this.all.postMessage(this.state());
  }

  close(bye: boolean): void {
    if (bye) this.all.postMessage({ t: "bye", tab: this.id } satisfies ToLeader);
    this.all.close();
    this.mine.close();
  }
}
