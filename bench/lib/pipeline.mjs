// HTTP/1.1 requests pipelined on one connection: publishes reach the server in the order they were
// sent (so out-of-order deliveries are the server's doing), with up to `window` in flight.
import net from "node:net";

export class Pipeline {
  constructor(port) {
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.setNoDelay(true);
    this.waiting = [];
    this.buf = Buffer.alloc(0);
    this.socket.on("data", (d) => this.read(d));
    this.socket.on("error", (e) => this.failAll(e));
    this.socket.on("close", () => this.failAll(new Error("publish connection closed")));
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("error", reject);
    });
  }

  get inFlight() {
    return this.waiting.length;
  }

  /** Resolves with the status code once the answer arrives. */
  post(path, headers, body) {
    if (this.socket.destroyed) return Promise.reject(new Error("publish connection closed"));
    let head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    this.socket.write(head + "\r\n" + body);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  read(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString("latin1");
      const status = Number(head.slice(9, 12));
      const len = head.match(/\r\ncontent-length: *(\d+)/i);
      let total;
      if (len) {
        total = end + 4 + Number(len[1]);
        if (this.buf.length < total) return;
      } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
        // Walk the chunks to find where the body ends.
        let at = end + 4;
        for (;;) {
          const nl = this.buf.indexOf("\r\n", at);
          if (nl < 0) return;
          const size = parseInt(this.buf.subarray(at, nl).toString("latin1"), 16);
          at = nl + 2 + size + 2;
          if (this.buf.length < at) return;
          if (size === 0) break;
        }
        total = at;
      } else total = end + 4;
      this.buf = this.buf.subarray(total);
      this.waiting.shift()?.resolve(status);
    }
  }

  failAll(e) {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  close() {
    this.socket.destroy();
  }
}
