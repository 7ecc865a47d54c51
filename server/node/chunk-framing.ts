import type { SharedText } from "../core/shared-text.js";

const CRLF = Buffer.from("\r\n");

/**
 * `size CRLF bytes CRLF`, one chunk of a `Transfer-Encoding: chunked` body, made once for every
 * response that is sent this text: a chunked response can then take it in one socket write.
 */
export function framedChunk(text: SharedText): Buffer {
  return text.prepare((t) => {
    const raw = Buffer.from(t);
    return Buffer.concat([Buffer.from(raw.length.toString(16) + "\r\n"), raw, CRLF]);
  });
}
