import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ProtocolError } from "../../src/errors.js";
import { FALLBACK_PARAM, parseFallback } from "../../src/fallback.js";
import { BackendUnavailableError, BusClosedError } from "../core/backend.js";
import type { RouteBus } from "./route-deps.js";

/**
 * The answers the bus's HTTP routes give that do not depend on who serves them: the Hono routes
 * and Node's direct poll path (server/node/direct-poll.ts) both say exactly these.
 */

/** An error answer: its status, the `{ "error": … }` text, and headers beyond the error headers. */
export interface ErrorAnswer {
  status: ContentfulStatusCode;
  error: string;
  headers?: Record<string, string>;
}

/** What every error answer carries: never cached, never sniffed. */
export const ERROR_HEADERS: Record<string, string> = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" };

/**
 * What an error thrown while answering tells the client; undefined when it is not the client's
 * business (the route reports it and answers 500).
 */
export function clientError(bus: RouteBus, err: unknown): ErrorAnswer | undefined {
  if (err instanceof ProtocolError) return { status: err.status, error: err.message };
  if (err instanceof HTTPException) return { status: err.status, error: err.message };
  // The shared store is down: the caller may retry. The driver's own words (hosts, ports) are the
  // operator's, reported once per outage by the backend, not an anonymous client's.
  // A request that raced a shutdown: the client comes back to another process.
  if (err instanceof BusClosedError) return { status: 503, error: err.message, headers: { "Retry-After": "1" } };
  if (err instanceof BackendUnavailableError) {
    bus.transports.hub.tally.storeUnavailable.subscribe++;
    return { status: 503, error: err.clientMessage, headers: { "Retry-After": "1" } };
  }
  return undefined;
}

/** Load shedding: a new subscription is refused while the process is over its limits (null: served). */
export function refusal(bus: RouteBus, held: boolean): ErrorAnswer | null {
  const shed = bus.shed(held);
  if (!shed) return null;
  const retry = Math.max(1, Math.ceil(shed.retryAfterMs / 1000));
  return { status: 503, error: `${shed.why}: retry after ${retry} s`, headers: { "Retry-After": String(retry), ...ERROR_HEADERS } };
}

/** A body over `max` bytes: the rest is never read, so the connection cannot be reused (say so). */
export function tooLarge(max: number): ErrorAnswer {
  return { status: 413, error: `request body too large: at most ${max} bytes`, headers: { Connection: "close" } };
}

/** A client's word on why it left a transport, carried by its next subscribe (docs/protocol.md#13-fallback-reports). */
export function countFallback(bus: RouteBus, search: string): void {
  if (!search.includes(FALLBACK_PARAM)) return;
  const report = parseFallback(new URLSearchParams(search).get(FALLBACK_PARAM));
  if (report) bus.transports.hub.tally.fallback(report);
}
