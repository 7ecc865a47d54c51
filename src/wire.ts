/**
 * The bytes on the wire for each transport (docs/protocol.md#6-transports). Server encoders and client decoders live side by side
 * so the two can never drift apart.
 */

import { encodeStatus, type StatusData } from "./envelope.js";

/** Poll and long-poll: a JSON array of envelopes already encoded with `encodeMessage`. */
export function jsonArray(encoded: readonly string[]): string {
  return encoded.length === 1 ? `[${encoded[0]}]` : `[${encoded.join(",")}]`;
}

/**
 * A batch as every transport sends it (a poll's answer, a chunk, a WebSocket frame): the encoded
 * messages, then the status if there is one (message_bus puts it last).
 */
export function batchJson(encoded: readonly string[], status: StatusData | null): string {
  return jsonArray(status ? [...encoded, encodeStatus(status)] : encoded);
}

// ---- chunked long-poll (message_bus) -------------------------------------------------------------

export const CHUNK_SEPARATOR = "\r\n|\r\n";
const ESCAPED_SEPARATOR = "\r\n||\r\n";

/** One chunk: the JSON array with any separator inside escaped, then the separator. */
export function encodeChunk(json: string): string {
  return (json.includes(CHUNK_SEPARATOR) ? json.split(CHUNK_SEPARATOR).join(ESCAPED_SEPARATOR) : json) + CHUNK_SEPARATOR;
}

/**
 * Splits what has arrived into whole chunks and the unfinished rest. JSON never holds a raw CR or LF,
 * so a separator can only be a real one; the escaping is message_bus's belt and braces, undone here.
 */
export function decodeChunks(buffer: string): { chunks: string[]; rest: string } {
  const parts = buffer.split(CHUNK_SEPARATOR);
  const rest = parts.pop() ?? "";
  return { chunks: parts.map((p) => (p.includes(ESCAPED_SEPARATOR) ? p.split(ESCAPED_SEPARATOR).join(CHUNK_SEPARATOR) : p)), rest };
}

// ---- Server-Sent Events -------------------------------------------------------------------------

/** Sent first on every stream: reconnect quickly, and give proxies and browsers bytes to flush. */
export const SSE_PREAMBLE = "retry: 1000\n: cometbus\n\n";
export const SSE_HEARTBEAT = ": hb\n\n";

/** One event; JSON.stringify never emits a raw newline, so one `data:` line is exact. */
export function sseEvent(id: string, json: string): string {
  return `id: ${id}\ndata: ${json}\n\n`;
}

/** An event without an id: an EventSource keeps the last id it had (a drain's "go elsewhere"). */
export function sseData(json: string): string {
  return `data: ${json}\n\n`;
}

/** How long a plain EventSource waits before it reconnects (its `retry` field), in ms. */
export function sseRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.round(ms))}\n\n`;
}

/**
 * An SSE event id holds the whole position of the stream: the epoch and, in the order of the
 * subscription, every channel's last message id (`epoch:5,0,12`). A browser's EventSource sends it
 * back as Last-Event-ID with the same URL, so the server resumes every channel exactly.
 */
export function sseId(epoch: string, positions: Iterable<number>): string {
  let s = epoch + ":";
  let first = true;
  for (const p of positions) {
    s += first ? p : "," + p;
    first = false;
  }
  return s;
}

export function parseSseId(id: string | null | undefined, channels: number): { epoch: string; positions: number[] } | null {
  if (!id) return null;
  const colon = id.indexOf(":");
  if (colon <= 0) return null;
  const list = id.slice(colon + 1);
  const parts = list === "" ? [] : list.split(",");
  // Decimal digits only: Number() would also take "0x10", "1e3", " 1" and "".
  if (parts.length !== channels || !parts.every((p) => /^\d{1,16}$/.test(p))) return null;
  const positions = parts.map(Number);
  if (!positions.every(Number.isSafeInteger)) return null;
  return { epoch: id.slice(0, colon), positions };
}

// ---- WebSocket ----------------------------------------------------------------------------------

/** Client → server frames. Server → client frames are JSON arrays of envelopes (`jsonArray`). */
export type ClientFrame = { subscribe: Record<string, number | string> } | { unsubscribe: string[] };

export const WS_CLOSE = {
  normal: 1000,
  goingAway: 1001,
  invalidData: 1007,
  policy: 1008,
  tooBig: 1009,
  serverError: 1011,
  serviceRestart: 1012,
  tryAgainLater: 1013,
} as const;
