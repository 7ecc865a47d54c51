/**
 * Text that goes back to a client (error bodies, WebSocket close reasons, log lines) is counted in
 * UTF-8 bytes and stays well-formed: a close reason over 123 bytes makes `ws` throw, and a string
 * cut inside a surrogate pair is not valid UTF-8 on the wire.
 */

/** UTF-8 length of a string; lone surrogates count as the 3 bytes of U+FFFD they are sent as. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** True when the string has no lone surrogate, so it encodes to UTF-8 and back unchanged. */
export function isWellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff || i + 1 >= s.length || (s.charCodeAt(i + 1) & 0xfc00) !== 0xdc00) return false;
    i++;
  }
  return true;
}

/**
 * At most `maxBytes` of UTF-8: cut at a code point, never inside one, with "…" marking the cut.
 * Lone surrogates become U+FFFD, so the result always encodes to valid UTF-8.
 */
export function truncateUtf8(s: string, maxBytes: number): string {
  if (s.length * 3 <= maxBytes && isWellFormed(s)) return s;
  const whole = prefix(s, maxBytes);
  if (whole.complete) return whole.text;
  return maxBytes >= 3 ? prefix(s, maxBytes - 3).text + "\u2026" : whole.text;
}

/** The longest well-formed prefix of `s` within `maxBytes`, and whether that is all of `s`. */
function prefix(s: string, maxBytes: number): { text: string; complete: boolean } {
  let out = "";
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
    const size = c < 0x80 ? 1 : c < 0x800 ? 2 : pair ? 4 : 3;
    if (n + size > maxBytes) return { text: out, complete: false };
    if (pair) {
      out += s[i] + s[i + 1];
      i++;
    } else out += c >= 0xd800 && c <= 0xdfff ? "\ufffd" : s[i];
    n += size;
  }
  return { text: out, complete: true };
}

/**
 * A client's value as it may appear inside an error message: JSON-quoted (so control characters and
 * quotes are visible, not interpreted) and at most `maxBytes` bytes.
 */
export function quote(value: unknown, maxBytes = 80): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value !== "string") return value === null ? "null" : typeof value;
  // Quote only a prefix: JSON.stringify of a megabyte string would be the cost of a request.
  const head = value.length > maxBytes ? value.slice(0, maxBytes + 1) : value;
  return truncateUtf8(JSON.stringify(head), maxBytes);
}

/** A WebSocket close reason: at most 123 bytes of UTF-8 (RFC 6455 §5.5.1), or the close throws. */
export function closeReason(reason: string): string {
  return truncateUtf8(reason, 123);
}
