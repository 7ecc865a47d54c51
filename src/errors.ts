/** A client's mistake: carries the HTTP status (and WebSocket close code) to answer it with. */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 426 | 429 = 400,
    readonly closeCode: number = status === 413 ? 1009 : 1008,
  ) {
    super(message);
    this.name = "ProtocolError";
  }
}
