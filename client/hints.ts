import { isStatus, type Message } from "../src/envelope.js";
import type { Host } from "./types.js";

/**
 * What a server says of where a client should go and when (docs/protocol.md#75-moving-spreading-and-shedding):
 * `__drain` in a status, "this server is going away: reconnect within this many ms"; `__spread` in a
 * welcome or a stream's head, "if this connection is ever cut without a word, reconnect at a random
 * moment within this many ms" (the server knows how many others would be cut with it).
 */
export interface ServerHints {
  drain?: number;
  spread?: number;
}

export function hintsOf(batch: readonly Message[]): ServerHints {
  const hints: ServerHints = {};
  for (const m of batch) {
    if (!isStatus(m) || !m.data) continue;
    const { __drain, __spread } = m.data as { __drain?: unknown; __spread?: unknown };
    if (typeof __drain === "number" && __drain >= 0) hints.drain = __drain;
    if (typeof __spread === "number" && __spread >= 0) hints.spread = __spread;
  }
  return hints;
}

/** The ms in a close reason: "service restart: reconnect within N ms", "…: retry after N ms". */
export function reasonMs(reason: string, lead: "within" | "retry after"): number | null {
  const m = new RegExp(`${lead} (\\d{1,7}) ms`).exec(reason);
  return m ? Number(m[1]) : null;
}

/** HTTP answers carry the spread hint as a header (`X-Cometbus-Spread`), since a poll has no welcome. */
export function spreadHeader(host: Host, res: Response): void {
  const v = Number(res.headers.get("x-cometbus-spread") ?? NaN);
  if (Number.isFinite(v) && v >= 0) host.spreadMs = Math.min(v, 60_000);
}
