import { busKey } from "./bus-key.js";

/**
 * What names the tabs that may share one connection: the bus, and the `headers` the connection would
 * send. Tabs whose headers differ (a per-tab token: another identity) never share; the headers go in
 * as a digest, since lock and channel names are visible to every script of the origin.
 */
export function shareKey(url: string, headers: Record<string, string>): string {
  const entries = Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]);
  if (!entries.length) return busKey(url);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `${busKey(url)}#${digest(JSON.stringify(entries))}`;
}

/** Two FNV-1a hashes with different offsets: 64 bits, so unrelated header sets do not meet by chance. */
function digest(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  return (a >>> 0).toString(36) + (b >>> 0).toString(36);
}
