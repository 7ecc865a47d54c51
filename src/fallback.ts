/**
 * Why a client left a transport, told to the server with its next subscribe request
 * (docs/protocol.md#13-fallback-reports): a query parameter `__fallback=from,to,reason[,seconds]`.
 * Closed lists, so a server that counts them by label keeps a bounded number of series.
 */
export const FALLBACK_PARAM = "__fallback";
export const FALLBACK_TRANSPORTS = ["websocket", "sse", "chunked", "long-poll", "poll"] as const;
export const FALLBACK_REASONS = ["refused", "no-welcome", "buffered", "silent", "proxy-cut", "hidden", "error"] as const;
export type FallbackTransport = (typeof FALLBACK_TRANSPORTS)[number];
export type FallbackReason = (typeof FALLBACK_REASONS)[number];

export interface FallbackReport {
  from: FallbackTransport;
  to: FallbackTransport;
  reason: FallbackReason;
  /** With `proxy-cut`: how long the connection had lived, in whole seconds. */
  seconds?: number;
}

/** The longest value a server reads; anything longer is not a report. */
export const MAX_FALLBACK_CHARS = 64;
/** The longest-lived connection a report may name (a day). */
export const MAX_FALLBACK_SECONDS = 86_400;

export function encodeFallback(r: FallbackReport): string {
  return [r.from, r.to, r.reason, ...(r.seconds !== undefined ? [Math.min(MAX_FALLBACK_SECONDS, Math.max(0, Math.round(r.seconds)))] : [])].join(",");
}

/** A report, or null for anything that is not one (reports are advisory: a bad one is ignored, never refused). */
export function parseFallback(value: string | null | undefined): FallbackReport | null {
  if (typeof value !== "string" || value.length > MAX_FALLBACK_CHARS) return null;
  const [from, to, reason, seconds, ...rest] = value.split(",");
  if (rest.length || !isOneOf(FALLBACK_TRANSPORTS, from) || !isOneOf(FALLBACK_TRANSPORTS, to) || !isOneOf(FALLBACK_REASONS, reason)) return null;
  if (seconds === undefined) return { from, to, reason };
  if (reason !== "proxy-cut" || !/^\d{1,5}$/.test(seconds) || Number(seconds) > MAX_FALLBACK_SECONDS) return null;
  return { from, to, reason, seconds: Number(seconds) };
}

function isOneOf<T extends string>(list: readonly T[], v: string | undefined): v is T {
  return (list as readonly string[]).includes(v as string);
}
