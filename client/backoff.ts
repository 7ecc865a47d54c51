/** Spreads retries of many clients apart: ±20 % around `ms`. */
export function jitter(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}

/** message-bus-client's linear backoff after errors, capped at `max`, jittered. */
export function linearBackoff(failures: number, interval: number, max: number): number {
  return Math.min(jitter(interval * Math.max(1, failures)), max);
}

/** Doubling backoff for a transport that failed again (`failures` ≥ 1), capped, jittered. */
export function doublingBackoff(failures: number, base: number, max: number): number {
  return Math.min(jitter(base * 2 ** Math.min(failures - 1, 16)), max);
}

/** `Retry-After` in ms: delta-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(header: string | null): number | null {
  if (!header) return null;
  const s = Number(header);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

/** Full jitter: a random moment within `ms` (0 when there is none to spread over). */
export function within(ms: number): number {
  return Math.round(Math.random() * Math.max(0, ms));
}

/** A server that said "come back after `ms`": between `ms` and twice that, so refused clients do not all return together. */
export function afterRetryAfter(ms: number): number {
  return Math.round(ms + Math.random() * ms);
}
