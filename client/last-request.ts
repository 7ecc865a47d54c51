import { storage } from "./storage.js";

/**
 * message-bus-client's key, and its format (ms since the epoch): tabs of one origin share it, so
 * a page that still runs message-bus-client in some tabs takes turns with cometbus's tabs.
 */
const KEY = "__mbLastAjax";

/** This tab asked the server now (message-bus-client stamps every request, visible tabs' too). */
export function stampRequest(): void {
  try {
    storage()?.setItem(KEY, String(Date.now()));
  } catch {
    // Quota, privacy mode: the tabs just do not take turns.
  }
}

/**
 * True while some tab of the origin asked less than `minMs` ago: a background-polling tab waits,
 * so that however many tabs sit in the background, they reach the server one at a time.
 * Without storage there is nobody to take turns with: never.
 */
export function askedRecently(minMs: number): boolean {
  let stamp: string | null | undefined;
  try {
    stamp = storage()?.getItem(KEY);
  } catch {
    return false;
  }
  const ago = Date.now() - parseInt(stamp ?? "", 10);
  // A stamp from the future (another tab's clock was set back since) is not waited for.
  return ago >= 0 && ago < minMs;
}

/** How long a waiting tab sleeps before it looks again: message-bus-client's 500–1000 ms. */
export function waitBeforeLookingAgain(): number {
  return 500 + Math.round(Math.random() * 500);
}
