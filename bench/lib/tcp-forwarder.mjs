// A small TCP load balancer for the deploy-storm bench (bench/storm.mjs): listens on a random
// loopback port and pipes each new connection to the current target port. `switchTo(port)` changes
// where NEW connections go; connections already open stay where they are, as behind a real load
// balancer taking a process out of rotation. When either side closes or errors, both ends are
// destroyed (a dead upstream shows to the client as a dropped connection, as it would in production).
//
// Every accepted connection is recorded: its arrival time (ms on the monotonic clock, the same in
// every process of this machine: `nowMs()`), its target port, and what its first request asked for
// (websocket / sse / long-poll / poll, read from the request line; "other" for anything else), so a
// run can plot arrivals per 100 ms at the new target.
//
// In-process:   const fwd = await startForwarder({ target: portA }); fwd.switchTo(portB); fwd.close();
// As a child:   fork this file; it sends { type: "ready", port }, then answers
//               { type: "switch", port } → { type: "switched", port, at },
//               { type: "arrivals" } → { type: "arrivals", arrivals, open },
//               { type: "close" } → exits. It also exits when its parent goes.
import net from "node:net";
import { fileURLToPath } from "node:url";

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** What a connection's first bytes ask for (cometbus's routes), or "other". */
export function classify(head) {
  const end = head.indexOf("\r\n");
  const line = end < 0 ? head : head.slice(0, end);
  const m = /^([A-Z]+) (\S+)/.exec(line);
  if (!m) return "other";
  const path = m[2];
  if (/\/ws(\?|$)/.test(path)) return "websocket";
  if (/\/sse(\?|$)/.test(path)) return "sse";
  if (/\/poll\?(.*&)?dlp=t(&|$)/.test(path)) return "poll";
  if (/\/poll(\?|$)/.test(path)) return "long-poll";
  return "other";
}

/**
 * Starts the forwarder. Resolves { port, switchTo(port), target, arrivals, open(), close() }.
 * `arrivals`: [{ at, target, kind }] in arrival order (`kind` is filled in once the first bytes came).
 */
export async function startForwarder({ target, host = "127.0.0.1", backlog = 4096 } = {}) {
  let current = target;
  const arrivals = [];
  const sockets = new Set();

  const server = net.createServer({ pauseOnConnect: false, noDelay: true }, (client) => {
    const rec = { at: nowMs(), target: current, kind: null };
    arrivals.push(rec);
    const upstream = net.connect({ port: current, host, noDelay: true });
    sockets.add(client);
    sockets.add(upstream);
    let done = false;
    const forget = () => {
      sockets.delete(client);
      sockets.delete(upstream);
    };
    const destroyBoth = () => {
      if (done) return;
      done = true;
      client.destroy();
      upstream.destroy();
      forget();
    };
    // One side closed: the other is destroyed too, once what pipe() already handed it is written
    // (the last bytes of a graceful close: a WebSocket close frame, a stream's last chunk).
    const closed = (other) => {
      if (done) return;
      done = true;
      forget();
      if (other.destroyed || other.writableLength === 0) return other.destroy();
      other.end();
      other.once("finish", () => other.destroy());
      setTimeout(() => other.destroy(), 1000).unref();
    };
    client.once("data", (d) => {
      rec.kind = classify(d.toString("latin1", 0, Math.min(d.length, 300)));
    });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", destroyBoth);
    upstream.on("error", destroyBoth);
    client.on("close", () => closed(upstream));
    upstream.on("close", () => closed(client));
  });
  server.on("error", (e) => console.error("tcp-forwarder:", e.message));
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host, backlog }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: server.address().port,
    get target() {
      return current;
    },
    arrivals,
    /** Where new connections go from now on; returns the moment (nowMs) it took effect. */
    switchTo(port) {
      current = port;
      return nowMs();
    },
    /** Client-side connections open now. */
    open: () => Math.floor(sockets.size / 2),
    close() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- as a forked child: the same forwarder, driven over IPC ----------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.send) {
  const target = Number(process.argv[2]);
  const fwd = await startForwarder({ target });
  process.on("message", async (m) => {
    if (m.type === "switch") process.send({ type: "switched", port: m.port, at: fwd.switchTo(m.port) });
    else if (m.type === "arrivals") process.send({ type: "arrivals", arrivals: fwd.arrivals, open: fwd.open() });
    else if (m.type === "close") {
      await fwd.close();
      process.exit(0);
    }
  });
  process.on("disconnect", () => process.exit(0));
  process.send({ type: "ready", port: fwd.port });
}
