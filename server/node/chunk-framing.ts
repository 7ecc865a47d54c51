const CRLF = Buffer.from("\r\n");

/**
 * Bytes that go to many responses unchanged (one SSE event for every single-channel stream), made
 * once together with their HTTP/1.1 chunk framing, so a chunked response can take them in one
 * socket write.
 */
export class SharedBytes {
  private _framed?: Buffer;

  constructor(readonly raw: Buffer) {}

  static concat(list: readonly SharedBytes[]): SharedBytes {
    return new SharedBytes(Buffer.concat(list.map((b) => b.raw)));
  }

  /** `size CRLF raw CRLF`: one chunk of a `Transfer-Encoding: chunked` body. */
  get framed(): Buffer {
    return (this._framed ??= Buffer.concat([Buffer.from(this.raw.length.toString(16) + "\r\n"), this.raw, CRLF]));
  }
}
