import { constants, deflateRawSync } from "node:zlib";

/**
 * permessage-deflate (RFC 7692) done so that one compressed payload is good for every socket: the
 * server never keeps a context between messages (`server_no_context_takeover`, always negotiated),
 * so a message compressed once, with the window a socket allows, decompresses on any of them.
 */

/** What the bus asks of permessage-deflate (the `perMessageDeflate` option); null when it is off. */
export interface DeflateSettings {
  /** Messages shorter than this many bytes go uncompressed: below it deflate saves little and costs a call. */
  readonly threshold: number;
}

/** Payloads compressed so far, however many sockets each went to (a test reads it: once per message). */
export const deflateStats = { calls: 0 };

/** The smallest window zlib makes a raw deflate stream for (it turns 8 into 9). */
const MIN_WINDOW_BITS = 9;

/**
 * A message's payload compressed as RFC 7692 §7.2.1 says: deflate with a sync flush, the flush's
 * trailing 00 00 ff ff left off (the receiver puts it back).
 */
export function deflatePayload(data: Buffer, windowBits: number): Buffer {
  deflateStats.calls++;
  const out = deflateRawSync(data, { windowBits, finishFlush: constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

/** What `ws` keeps of a socket's negotiated extensions (private: its public `extensions` has the names only). */
type Negotiated = { _extensions?: Record<string, { params?: Record<string, unknown> } | undefined> };

/**
 * The window this socket's client allows the server (`server_max_window_bits`, 15 unless it asked
 * for less), as `ws` negotiated it; null when the socket has no permessage-deflate, asked for a
 * window zlib cannot keep to, or `ws` does not say (then the socket gets plain frames, always valid).
 */
export function negotiatedWindow(ws: object): number | null {
  const params = (ws as Negotiated)._extensions?.["permessage-deflate"]?.params;
  if (!params || params.server_no_context_takeover !== true) return null;
  const asked = params.server_max_window_bits;
  const bits = typeof asked === "number" ? asked : 15;
  return bits >= MIN_WINDOW_BITS && bits <= 15 ? bits : null;
}

/**
 * The `perMessageDeflate` the WebSocketServer gets. With frames built here (`prepared`), `ws`
 * compresses nothing itself (threshold ∞): everything a socket is sent goes out synchronously and
 * in order, whether it was compressed here or sent plain by `ws`. Without, `ws` compresses each
 * socket's messages itself, still without context takeover.
 */
export function wsDeflateOptions(settings: DeflateSettings | null, prepared: boolean): false | Record<string, unknown> {
  if (!settings) return false;
  return {
    serverNoContextTakeover: true,
    // The client keeps no context either: a socket's inflater holds nothing between messages.
    clientNoContextTakeover: true,
    threshold: prepared ? Number.POSITIVE_INFINITY : settings.threshold,
  };
}
