import type { StatusData } from "../../src/envelope.js";
import { batchJson as encodeBatch } from "../../src/wire.js";
import { BackendUnavailableError } from "../core/backend.js";
import type { Outgoing } from "../core/outgoing.js";
import type { CatchUpPage } from "../core/subscriber.js";

/** Every response of the bus: never cached, never content-sniffed (a JSON body is not HTML). */
export const NO_CACHE: Record<string, string> = {
  "Cache-Control": "no-cache, no-store, no-transform",
  Pragma: "no-cache",
  Expires: "0",
  "X-Content-Type-Options": "nosniff",
};

/**
 * Marks an answer made by an Exchange's `json()`: it carries every header the bus adds, so the
 * routes need not read its headers (on Node that alone builds a web Headers object per poll).
 */
export const BUS_HEADERS: unique symbol = Symbol("cometbus: the bus's headers are set");

/** A `json()` answer, marked (BUS_HEADERS). */
export function busJson(body: string, headers: Record<string, string>): Response {
  const res = new Response(body, { status: 200, headers });
  (res as Response & { [BUS_HEADERS]?: true })[BUS_HEADERS] = true;
  return res;
}

export const JSON_TYPE = "application/json; charset=utf-8";
export const CHUNKED_TYPE = "text/plain; charset=utf-8";

/** A batch as one JSON array, the status last (message_bus's order). */
export function batchJson(batch: readonly Outgoing[], status: StatusData | null): string {
  if (!status && batch.length === 1) return batch[0].array;
  return encodeBatch(batch.map((o) => o.json), status);
}

/**
 * The status a streamed catch-up page carries: with the first page the epoch (when the client's was
 * another) and where channels asked at -1 or -N start; the channels found reset since the previous
 * page (so the client resets them before the messages that follow); and with the last page where the
 * channels stand. A catch-up of one page gets exactly the status a poll would.
 */
export function pageStatus(p: CatchUpPage): StatusData | null {
  // A catch-up of more than one page tells where -1 and -N channels start with its first page.
  const data: StatusData = p.last ? p.cu.toldPositions() : p.first ? p.cu.startPositions() : {};
  if (p.first && p.cu.tellEpoch) data.__epoch = p.cu.epoch;
  if (p.reset.length) data.__reset = p.reset;
  return Object.keys(data).length ? data : null;
}

/**
 * Runs a stream's subscribe lifecycle and resolves true as soon as the stream has begun (its
 * response can go out; the catch-up pages follow behind it, paced by the client), or false when it
 * ended before beginning (replaced, shut down). An error before the stream began rejects (the
 * request is answered with it); after, `late` gets it (the stream is cut and the client resumes).
 */
export function beginStream(run: (begun: () => void) => Promise<void>, late: (e: unknown) => void): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let begun = false;
    run(() => {
      begun = true;
      resolve(true);
    }).then(
      () => {
        if (!begun) resolve(false);
      },
      (e) => {
        if (begun) late(e);
        else reject(e);
      },
    );
  });
}

/**
 * An error after a stream began: the stream is cut and the client resumes. A store outage is the
 * store reporter's to log (once per outage), not once per connection it cut.
 */
export function reportLate(ctx: { report(e: unknown): void }, e: unknown): void {
  if (!(e instanceof BackendUnavailableError)) ctx.report(e);
}

/**
 * Whether a stream should be told the spread hint again: the hint a connection was given when it
 * came is stale once the process has filled up (the first clients after a deploy were told ~0 ms).
 * Retold when it moved by more than a quarter and 100 ms: a handful of times while a process fills.
 */
export function spreadMoved(told: number, now: number): boolean {
  return Math.abs(now - told) > Math.max(100, told / 4);
}
