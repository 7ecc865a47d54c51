import { statusMessage, type StatusData } from "../../src/envelope.js";
import { jsonArray } from "../../src/wire.js";
import type { Outgoing } from "../outgoing.js";

export const NO_CACHE: Record<string, string> = {
  "Cache-Control": "no-cache, no-store, no-transform",
  Pragma: "no-cache",
  Expires: "0",
};

export const JSON_TYPE = "application/json; charset=utf-8";
export const CHUNKED_TYPE = "text/plain; charset=utf-8";

/** A batch as one JSON array, the status last (message_bus's order). */
export function batchJson(batch: readonly Outgoing[], status: StatusData | null): string {
  if (!status) {
    if (batch.length === 1) return batch[0].array;
    return jsonArray(batch.map((o) => o.json));
  }
  const parts = batch.map((o) => o.json);
  parts.push(JSON.stringify(statusMessage(status)));
  return jsonArray(parts);
}
