import type { Socket } from "node:net";

/**
 * Bytes written on the connections that carried the bus's requests and sockets, headers and
 * framing included: Node's own count per socket, read when asked (metrics on only; nothing per write).
 */
export class ByteMeter {
  private ended = 0;
  private readonly live = new Set<Socket>();
  private readonly seen = new WeakSet<Socket>();

  track(socket: Socket): void {
    if (this.seen.has(socket)) return;
    this.seen.add(socket);
    this.live.add(socket);
    socket.once("close", () => {
      this.live.delete(socket);
      this.ended += socket.bytesWritten;
    });
  }

  get total(): number {
    let n = this.ended;
    for (const s of this.live) n += s.bytesWritten;
    return n;
  }
}
