import { retryAfterMs } from "./backoff.js";
import { stampRequest } from "./last-request.js";
import { FALLBACK_PARAM, type FallbackReport, encodeFallback } from "../src/fallback.js";
import type { Host } from "./types.js";

/** A response that was not 2xx; `retryAfter` (ms) when the server said when to come back. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly retryAfter: number | null,
  ) {
    super(`HTTP ${status}`);
  }
}

/** POSTs the subscription as JSON with the app's headers; rejects on network errors and non-2xx. */
export async function postSubscription(
  host: Host,
  url: string,
  body: Record<string, number | string>,
  signal: AbortSignal,
  extraHeaders?: Record<string, string>,
): Promise<Response> {
  host.stats.requests++;
  stampRequest();
  const res = await fetch(withFallback(host, url), {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-SILENCE-LOGGER": "true", ...host.options.headers, ...extraHeaders },
    body: JSON.stringify(body),
    signal,
    cache: "no-store",
    credentials: "same-origin",
  });
  if (!res.ok) {
    // 429 (rate limited) and 503 (overloaded, or the store is down) say when to come back.
    const retry = res.status === 429 || res.status === 503 ? retryAfterMs(res.headers.get("retry-after")) : null;
    void res.body?.cancel().catch(() => {});
    throw new HttpError(res.status, retry);
  }
  return res;
}

/** Reads a streamed body as text pieces; `onText` returns false to stop reading. */
export async function readText(
  res: Response,
  host: Host,
  signal: AbortSignal,
  onText: (text: string) => boolean | void,
): Promise<void> {
  if (!res.body) {
    // No streaming body (old browsers): the whole answer at its end is still an answer.
    const text = await res.text();
    host.stats.bytes += text.length;
    onText(text);
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  // Not every fetch (mocks, some polyfills) ends a pending read on abort; cancelling always does.
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      host.stats.bytes += value.byteLength;
      if (onText(decoder.decode(value, { stream: true })) === false) break;
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}

/** Keeps a report of why the client left a transport for its next subscribe request. */
export function reportFallback(host: Host, r: FallbackReport): void {
  host.fallback = encodeFallback(r);
}

/** `url` with the pending fallback report, if any (sent once: no extra request, docs/protocol.md#13-fallback-reports). */
export function withFallback(host: Host, url: string): string {
  const f = host.fallback;
  if (!f) return url;
  host.fallback = null;
  return `${url}${url.includes("?") ? "&" : "?"}${FALLBACK_PARAM}=${encodeURIComponent(f)}`;
}
