import type { Message, TransportName } from "../types.js";

/**
 * What the tabs of one bus say to each other (README, "Tabs"). Each tab listens on two
 * BroadcastChannels: the bus's own (`…:all`, announcements and every tab's state for the leader) and
 * its own (`…:tab:{clientId}`, what the leader delivers to it alone, in order). Nothing here is on
 * the server's wire.
 */
export type ToLeader =
  /** A tab's whole subscription: sent when it changes, when the page is shown or hidden, and to a new leader. */
  | { t: "state"; tab: string; positions: [string, number][]; epoch: string; live: boolean }
  /** The tab stops (or its page goes): its channels and client id leave the connection. */
  | { t: "bye"; tab: string };

export type ToTabs = { t: "leader"; tab: string };

export type ToTab =
  /** A batch as the server sent it, narrowed to this tab's channels and the messages it may see. */
  | { t: "batch"; messages: Message[]; sentEpoch: string }
  | { t: "transport"; name: TransportName | null };

/** Everything one tab needs from the locks and channels of its bus, named once. */
export interface TabNames {
  all: string;
  leaderLock: string;
  tab(clientId: string): string;
  tabLock(clientId: string): string;
}

export function tabNames(key: string): TabNames {
  const p = "cometbus:" + key;
  return {
    all: p + ":all",
    leaderLock: p + ":leader",
    tab: (id) => p + ":tab:" + id,
    tabLock: (id) => p + ":tab-lock:" + id,
  };
}

/** Web Locks and BroadcastChannel both: a browser page where tabs can share. */
export function canShareTabs(): boolean {
  return (
    typeof document !== "undefined" &&
    typeof BroadcastChannel !== "undefined" &&
    typeof navigator !== "undefined" &&
    !!(navigator as Navigator & { locks?: unknown }).locks
  );
}
