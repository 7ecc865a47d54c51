import type { ServerResponse } from "node:http";
import type { Context } from "hono";

/**
 * Calls `fn` once the client of this request has gone; true if it already has. On Node the response's
 * "close" event says so; `c.req.raw.signal` would build a web Request and an AbortController for every
 * held poll (CPU per poll, and memory each idle long-poll keeps).
 */
export function onClientGone(c: Context, fn: () => void): boolean {
  const out = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (out && typeof out.once === "function") {
    if (out.destroyed || out.socket?.destroyed || out.writableFinished) return true;
    out.once("close", fn);
    return false;
  }
  const signal = c.req.raw.signal;
  if (signal.aborted) return true;
  signal.addEventListener("abort", fn, { once: true });
  return false;
}
