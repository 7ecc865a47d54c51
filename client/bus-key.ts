/**
 * What names one bus in a browser: the origin and path of its URLs without `/{clientId}/{what}`.
 * The remembered transport and the tabs sharing a connection are both per bus.
 */
export function busKey(url: string): string {
  try {
    const base = typeof location !== "undefined" ? location.href : undefined;
    const u = new URL(url, base);
    return u.origin + u.pathname.replace(/\/[^/]*\/[^/]*$/, "");
  } catch {
    return url;
  }
}
