/** A client's mistake: carries the HTTP status (and WebSocket close code) to answer it with. */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 403 | 404 | 413 | 426 | 429 = 400,
    readonly closeCode: number = status === 413 ? 1009 : 1008,
  ) {
    super(message);
    this.name = "ProtocolError";
  }
}
