import { busKey } from "./bus-key.js";
import { storage } from "./storage.js";
import type { TransportName } from "./types.js";

const memory = new Map<string, string>();

function key(url: string): string {
  return "cometbus:transport:" + busKey(url);
}

/** The last transport that worked for a bus (origin and path), to start there next time. */
export function recall(url: string): TransportName | null {
  const k = key(url);
  let v: string | null = memory.get(k) ?? null;
  try {
    v = storage()?.getItem(k) ?? v;
  } catch {
    // Storage can be disabled; memory still helps this page.
  }
  return v as TransportName | null;
}

export function remember(url: string, name: TransportName): void {
  const k = key(url);
  // Called on every answer of a working transport; storage is written only when it changes.
  if (memory.get(k) === name) return;
  memory.set(k, name);
  try {
    storage()?.setItem(k, name);
  } catch {
    // Quota or privacy mode.
  }
}
