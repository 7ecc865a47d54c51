import { ProtocolError } from "./errors.js";
import { DEFAULT_LIMITS } from "./limits.js";
import { isWellFormed, quote, utf8Length } from "./text.js";

// C0, DEL and C1: they would break log lines and headers, and no channel needs them.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
export const CLIENT_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const EPOCH_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * An epoch travels in SSE event ids (`epoch:p1,…`) and in every client's `__epoch`: 1-64 characters
 * of A-Z a-z 0-9 _ -. A backend's own epochs are checked against it (a custom one could break both).
 */
export function isEpoch(epoch: unknown): epoch is string {
  return typeof epoch === "string" && EPOCH_RE.test(epoch);
}

/**
 * A channel is any text that starts with "/", 1..maxBytes bytes of UTF-8, without control
 * characters (docs/protocol.md#31-channels): message_bus accepts any string, and its users have channels like "/café bar".
 */
export function checkChannel(channel: unknown, maxBytes = DEFAULT_LIMITS.maxChannelBytes): string {
  if (
    typeof channel !== "string" ||
    channel[0] !== "/" ||
    (channel.length * 3 > maxBytes && (channel.length > maxBytes || utf8Length(channel) > maxBytes)) ||
    CONTROL_RE.test(channel) ||
    !isWellFormed(channel)
  ) {
    throw new ProtocolError(
      `bad channel ${quote(channel)}: a channel starts with "/" and is 1-${maxBytes} bytes of UTF-8 without control characters`,
    );
  }
  return channel;
}

/** Channels under `/__` are the protocol's own (`/__status`); nobody may publish there. */
export function checkPublishChannel(channel: unknown, maxBytes?: number): string {
  const c = checkChannel(channel, maxBytes);
  if (c.startsWith("/__")) throw new ProtocolError(`bad channel ${quote(c)}: channels starting with "/__" are reserved`);
  return c;
}

export function checkClientId(id: unknown): string {
  if (typeof id !== "string" || !CLIENT_ID_RE.test(id)) {
    throw new ProtocolError("bad client id: 1-64 characters of A-Z a-z 0-9 _ -");
  }
  return id;
}

/**
 * A position: an integer (as number or decimal string). `""` means "from now" (-1), as message_bus reads it.
 * -1 new messages only, -N the last N-1 then new ones, k >= 0 everything after k.
 */
export function parsePosition(value: unknown, channel: string): number {
  if (value === "" || value === null || value === undefined) return -1;
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && /^-?\d{1,16}$/.test(value)) n = Number(value);
  else n = NaN;
  if (!Number.isSafeInteger(n)) {
    throw new ProtocolError(`bad id for channel ${quote(channel, 60)}: ${quote(value, 40)} is not an integer`);
  }
  return n;
}
