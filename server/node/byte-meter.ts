import type { Socket } from "node:net";

/**
 * Bytes written on the connections that carried the bus's requests and sockets, headers and
 * framing included: Node's own count per socket, read when asked (metrics on only; nothing per write).
 */
export class ByteMeter {
  private ended = 0;
  private readonly live = new Set<Socket>();
  private readonly seen = new WeakSet<Socket>();
  /** One listener for every socket (`this` is the socket), not a closure kept by each idle one. */
  private readonly closed: (this: Socket) => void;

  constructor() {
    const meter = this;
    this.closed = function () {
      meter.live.delete(this);
      meter.ended += this.bytesWritten;
    };
  }

  track(socket: Socket): void {
    if (this.seen.has(socket)) return;
    this.seen.add(socket);
    this.live.add(socket);
    socket.on("close", this.closed);
  }

  get total(): number {
    let n = this.ended;
    for (const s of this.live) n += s.bytesWritten;
    return n;
  }
}
