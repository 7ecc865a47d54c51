#!/usr/bin/env node
// Quick fan-out figure, for a first look while changing the hot path: messages/s delivered to 100
// WebSocket and 100 SSE subscribers (`npm run bench` is the full, comparable run).
//
// Layout: the server (built dist/, memory backend) and the message generator run together in ONE
// child process (`--server` mode of this file), publishing with `bus.publish` in-process; the
// subscribers (ws clients and fetch-based SSE readers) run in this, the parent, process. So the
// server's CPU is measured apart from the clients' parsing; on a 2-core box each side gets a core.
//
//   node bench/quick-fanout.mjs [--messages 2000] [--subs 100] [--size 100]
//
// Delivered/s = messages × subscribers / (time from the publish command to the last message at
// the last subscriber). Each subscriber must see every message id exactly (checked), or the run fails.
import { fork } from "node:child_process";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

const { values } = parseArgs({
  options: {
    server: { type: "boolean", default: false },
    messages: { type: "string", default: "2000" },
    subs: { type: "string", default: "100" },
    size: { type: "string", default: "100" },
  },
});

if (values.server) await serverMain();
else await parentMain();

// ---- child: server + generator ------------------------------------------------------------------

async function serverMain() {
  const { MessageBus } = await import(new URL("../dist/server/index.js", import.meta.url).href);
  const bus = new MessageBus({ onError: () => {}, maxBacklogSize: 100_000, maxGlobalBacklogSize: 100_000 });
  const listening = await bus.listen(0, "127.0.0.1");
  process.send({ port: listening.port });
  process.on("message", async (cmd) => {
    if (cmd.publish) {
      const data = { text: "x".repeat(cmd.size) };
      const t0 = performance.now();
      for (let i = 0; i < cmd.publish; i++) {
        await bus.publish(cmd.channel, data);
        // Let the hub flush now and then, as a real app publishing from requests would.
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      process.send({ published: cmd.publish, ms: performance.now() - t0, stats: bus.stats() });
    } else if (cmd.stop) {
      await listening.close();
      process.exit(0);
    }
  });
}

// ---- parent: subscribers and timing -------------------------------------------------------------

async function parentMain() {
  const { default: WebSocket } = await import("ws");
  const messages = Number(values.messages);
  const subs = Number(values.subs);
  const size = Number(values.size);
  const child = fork(fileURLToPath(import.meta.url), ["--server"], { stdio: "inherit" });
  const replies = [];
  let wake = null;
  child.on("message", (m) => {
    replies.push(m);
    wake?.();
  });
  const reply = async () => {
    while (!replies.length) await new Promise((r) => (wake = r));
    return replies.shift();
  };
  const { port } = await reply();
  const base = `http://127.0.0.1:${port}/message-bus`;

  /** Counts a subscriber's messages; resolves when it has `messages` of them, in order. */
  function tracker() {
    let count = 0;
    let resolve;
    const done = new Promise((r) => (resolve = r));
    return {
      done,
      add(ids) {
        for (const id of ids) {
          if (id !== count + 1) throw new Error(`out of order: got ${id} after ${count}`);
          count = id;
        }
        if (count === messages) resolve();
      },
    };
  }

  // Message ids from a batch without JSON-parsing the data (the client side must stay cheap).
  const ID_RE = /"message_id":(\d+),"channel":"\/bench/g;
  const idsIn = (text) => Array.from(text.matchAll(ID_RE), (m) => Number(m[1]));

  async function openWs(channel, n) {
    const trackers = [];
    const sockets = [];
    await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const t = tracker();
        trackers.push(t);
        const ws = new WebSocket(`${base.replace("http", "ws")}/ws${i}/ws`, { perMessageDeflate: false });
        sockets.push(ws);
        return new Promise((resolve, reject) => {
          let frames = 0;
          ws.on("message", (d) => {
            const text = d.toString();
            if (++frames === 2) resolve(); // welcome, then the subscribe answer
            t.add(idsIn(text));
          });
          ws.on("open", () => ws.send(JSON.stringify({ subscribe: { [channel]: 0 } })));
          ws.on("error", reject);
        });
      }),
    );
    return { trackers, close: () => sockets.forEach((s) => s.terminate()) };
  }

  async function openSse(channel, n) {
    const trackers = [];
    const aborts = [];
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const t = tracker();
        trackers.push(t);
        const ac = new AbortController();
        aborts.push(ac);
        const res = await fetch(`${base}/sse${i}/sse?${channel}=0`, { signal: ac.signal });
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let rest = "";
        await reader.read(); // the preamble and the first status: subscribed
        (async () => {
          try {
            for (;;) {
              const { done, value } = await reader.read();
              if (done) return;
              // Events end with a blank line; only whole events are counted.
              const text = rest + decoder.decode(value, { stream: true });
              const end = text.lastIndexOf("\n\n");
              rest = text.slice(end + 2);
              t.add(idsIn(text.slice(0, end + 2)));
            }
          } catch {
            /* aborted */
          }
        })();
      }),
    );
    return { trackers, close: () => aborts.forEach((a) => a.abort()) };
  }

  async function run(label, open) {
    const channel = `/bench/${label.replace(/\W+/g, "-")}`;
    const groups = await open(channel);
    const trackers = groups.flatMap((g) => g.trackers);
    const t0 = performance.now();
    child.send({ publish: messages, channel, size });
    const pub = await reply();
    await Promise.all(trackers.map((t) => t.done));
    const ms = performance.now() - t0;
    groups.forEach((g) => g.close());
    const delivered = messages * trackers.length;
    return {
      run: label,
      subscribers: trackers.length,
      messages,
      "publish ms": Math.round(pub.ms),
      "total ms": Math.round(ms),
      "published/s": Math.round(messages / (pub.ms / 1000)),
      "delivered/s": Math.round(delivered / (ms / 1000)),
    };
  }

  const results = [];
  results.push(await run(`${subs} websocket`, async (ch) => [await openWs(ch, subs)]));
  results.push(await run(`${subs} sse`, async (ch) => [await openSse(ch, subs)]));
  results.push(await run(`${subs} websocket + ${subs} sse`, async (ch) => [await openWs(ch, subs), await openSse(ch, subs)]));
  console.log(`quick fan-out: ${messages} messages of ~${size + 70} bytes each, server+generator in a child process, clients in this one`);
  console.table(results);
  child.send({ stop: true });
}
