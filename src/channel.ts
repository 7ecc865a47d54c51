import { ProtocolError } from "./errors.js";
import { DEFAULT_LIMITS } from "./limits.js";

// Printable ASCII without space; the first character is the slash.
const CHANNEL_RE = /^\/[\x21-\x7e]*$/;
const CLIENT_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Channels are `/`-led printable ASCII without spaces, 1..maxBytes bytes (ASCII: bytes = length). */
export function checkChannel(channel: unknown, maxBytes = DEFAULT_LIMITS.maxChannelBytes): string {
  if (typeof channel !== "string" || channel.length > maxBytes || !CHANNEL_RE.test(channel)) {
    const shown = typeof channel === "string" ? JSON.stringify(channel.slice(0, 80)) : typeof channel;
    throw new ProtocolError(
      `bad channel ${shown}: a channel starts with "/" and is 1-${maxBytes} printable ASCII characters without spaces`,
    );
  }
  return channel;
}

/** Channels under `/__` are the protocol's own (`/__status`); nobody may publish there. */
export function checkPublishChannel(channel: unknown, maxBytes?: number): string {
  const c = checkChannel(channel, maxBytes);
  if (c.startsWith("/__")) throw new ProtocolError(`bad channel "${c}": channels starting with "/__" are reserved`);
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
    throw new ProtocolError(`bad id for channel "${channel}": ${JSON.stringify(value)} is not an integer`);
  }
  return n;
}
