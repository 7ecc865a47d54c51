import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";

/**
 * Hono's bodyLimit, minus its cost on the hot path: it touches `c.req.raw.body`, which on Node builds
 * a whole web Request (AbortSignal, ReadableStream) for every poll. A body without Transfer-Encoding
 * is exactly Content-Length bytes (or none), so the header decides; only chunked bodies are counted.
 */
export function cheapBodyLimit(
  maxSize: number,
  header: (c: Context, name: string) => string | undefined,
  onError: (c: Context) => Response | Promise<Response>,
): MiddlewareHandler {
  const counted = bodyLimit({ maxSize, onError });
  return async (c, next) => {
    if (header(c, "transfer-encoding") !== undefined) return counted(c, next);
    return Number(header(c, "content-length") ?? 0) > maxSize ? onError(c) : next();
  };
}
