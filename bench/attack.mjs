#!/usr/bin/env node
// Attacks a running cometbus server from outside, the way anyone who can reach it could (loopback
// only, no credentials), and prints a figure per finding: a markdown table, and JSON with --out.
// It measures; it asserts nothing. Run it against the code before a fix and after, and compare.
//
//   node bench/attack.mjs [--root DIR] [--only NAME[,NAME]] [--out FILE.json] [--md FILE.md]
//
// --root   the checkout whose dist/ is attacked (default: this repository); it must be built.
// --only   scenarios to run (default all): crash, pipelined-orphans, slow-readers, slow-readers-live,
//          aborted-bodies, seq-hijack, ws-frame-burst, host-header, token, headers, deep-nesting,
//          origin-scheme, unicode-channels.
//
// Only public interfaces are used: the CLI (`ROOT/dist/server/cli.js serve --port 0`), and for
// options the CLI has no flags for, bench/attack-server.mjs (imports ROOT/dist/server/index.js, runs
// under --expose-gc, and has a control server of its own for GC'd memory figures and fast publishing).
// Every server is a child process started fresh for its scenario (or variant) and killed afterwards.
//
// Sizes are picked so a full run takes about 4 minutes on 2 shared cores (against the code before
// the fixes; pipelined orphans that wait out the 25 s long-poll timeout are half of it). The largest
// server then peaks at about 1.2 GB RSS (slow-readers).
//   pipelined-orphans  K = 10 and 100 connections × 300 pipelined requests each (3,000 / 30,000), per kind:
//                      sse, chunked, long-poll asking -1 (answered at once, never held) and asking 0 (held)
//   slow-readers       10 channels × 1000 messages × ~1 KB backlog; 50 never-reading clients per transport
//                      asking for all of it (~10 MB each); memory 5 s after they connected and 5 s after they were cut
//   slow-readers-live  100 never-reading clients per streaming transport, 1 KB × 200 msg/s for 10 s (~2 MB each:
//                      on loopback most of that fits in the kernel's socket buffers, shown as "kernel")
// Memory figures are MB after two gc() in the server (peak RSS: sampled once a second, no GC).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import WebSocket from "ws";

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    root: { type: "string", default: resolve(HERE, "..") },
    only: { type: "string" },
    out: { type: "string" },
    md: { type: "string" },
  },
});
const ROOT = resolve(args.root);
const TOKEN = "attack-token";

// ---- what this process owns: children and sockets, closed even on failure ------------------------

const children = new Set();
const sockets = new Set();

function track(s) {
  sockets.add(s);
  s.once("close", () => sockets.delete(s));
  return s;
}

function closeSockets() {
  for (const s of sockets) {
    if (s instanceof WebSocket) s.terminate();
    else s.destroy();
  }
  sockets.clear();
}

function killChildren() {
  for (const c of children) if (c.alive) c.proc.kill("SIGKILL");
}

process.on("exit", () => {
  closeSockets();
  killChildren();
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    closeSockets();
    killChildren();
    process.exit(130);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function timeout(ms, what) {
  let timer;
  const p = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  p.clear = () => clearTimeout(timer);
  return p;
}

async function within(ms, what, promise) {
  const t = timeout(ms, what);
  try {
    return await Promise.race([promise, t]);
  } finally {
    t.clear();
  }
}

// ---- servers ------------------------------------------------------------------------------------

class Child {
  constructor(proc) {
    this.proc = proc;
    this.stdout = "";
    this.stderr = "";
    this.exit = null;
    this.exited = new Promise((r) =>
      proc.once("exit", (code, signal) => {
        this.exit = { code, signal };
        children.delete(this);
        r(this.exit);
      }),
    );
    proc.stdout.on("data", (d) => (this.stdout += d));
    proc.stderr.on("data", (d) => {
      if (this.stderr.length < 4_000_000) this.stderr += d;
    });
    children.add(this);
  }

  get alive() {
    return this.exit === null;
  }

  async line(re, ms) {
    const t0 = Date.now();
    while (Date.now() - t0 < ms) {
      const m = this.stdout.match(re);
      if (m) return m;
      if (!this.alive) break;
      await sleep(20);
    }
    throw new Error(`server did not start (${re}): ${this.stdout}${this.stderr}`.slice(0, 800));
  }

  async stop() {
    if (!this.alive) return;
    this.proc.kill("SIGTERM");
    await Promise.race([this.exited, sleep(3000)]);
    if (this.alive) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }
}

function serverInfo(child, url, control) {
  const u = new URL(url);
  return { child, url, port: Number(u.port), base: u.pathname.replace(/\/$/, ""), control, wsUrl: url.replace(/^http/, "ws") };
}

/** The CLI, `serve --port 0` plus flags. */
async function startCli(flags = []) {
  const proc = spawn(process.execPath, [`${ROOT}/dist/server/cli.js`, "serve", "--port", "0", ...flags], { stdio: ["ignore", "pipe", "pipe"] });
  const child = new Child(proc);
  const [, url] = await child.line(/cometbus listening on (http:\/\/\S+)/, 10_000);
  return serverInfo(child, url, null);
}

/** bench/attack-server.mjs with bus options the CLI lacks; has the control routes. */
async function startAttackServer(config = {}) {
  const proc = spawn(process.execPath, ["--expose-gc", `${HERE}/attack-server.mjs`, "--root", ROOT, "--config", JSON.stringify(config)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const child = new Child(proc);
  const [, json] = await child.line(/attack-server (\{.*\})/, 10_000);
  const { url, control } = JSON.parse(json);
  return serverInfo(child, url, control);
}

/** Runs fn with a fresh server, stopped afterwards whatever happens. */
async function withServer(start, fn) {
  const server = await start();
  try {
    return await fn(server);
  } finally {
    closeSockets();
    await server.child.stop();
  }
}
const cli = (flags) => () => startCli(flags);
const attackServer = (config) => () => startAttackServer(config);

// ---- HTTP helpers -------------------------------------------------------------------------------

async function getJson(url, ms = 10_000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
  return res.json();
}

const stats = (s) => getJson(`${s.url}/stats`);

async function mem(s, gc = true) {
  const m = await getJson(`${s.control}/mem${gc ? "" : "?gc=0"}`, 30_000);
  return { rss: mb(m.rss), heap: mb(m.heapUsed), external: mb(m.external) };
}

async function control(s, path, body) {
  const res = await fetch(`${s.control}/${path}`, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(120_000) });
  return { status: res.status, ...(await res.json()) };
}

/**
 * Bytes the kernel holds for connections to `port` (/proc/net/tcp): the server's send queues and the
 * clients' unread receive queues. What a non-reading client makes the server keep in memory is the
 * rest: the kernel takes the first few MB per connection on loopback.
 */
function kernelQueues(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let serverTx = 0;
  let clientRx = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    const [tx, rx] = f[4].split(":").map((x) => parseInt(x, 16));
    if (f[1].endsWith(`:${hex}`)) serverTx += tx;
    else if (f[2].endsWith(`:${hex}`)) clientRx += rx;
  }
  return { "server send queues": mb(serverTx), "clients' receive queues": mb(clientRx) };
}

function mb(bytes) {
  return Math.round((bytes / 1048576) * 10) / 10;
}

/** A request through fetch; the body is read (up to `ms`). */
async function request(url, { method = "POST", headers = {}, body, ms = 10_000 } = {}) {
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(ms) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const FORM = { "Content-Type": "application/x-www-form-urlencoded" };

/** A raw TCP connection to the server, errors swallowed (the server may cut it). */
async function connect(port) {
  const socket = track(net.connect(port, "127.0.0.1"));
  socket.on("error", () => {});
  await within(5000, "connect", new Promise((r, j) => socket.once("connect", r).once("error", j)));
  return socket;
}

function httpRequest(method, path, port, { headers = {}, body = "" } = {}) {
  let head = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`;
  if (method !== "GET" || body) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  return `${head}\r\n${body}`;
}

/** A form body / query of `channel=lastId` pairs, channels kept readable (message_bus sends them so). */
function pairs(positions) {
  return Object.entries(positions)
    .map(([ch, id]) => `${ch}=${id}`)
    .join("&");
}

// ---- WebSocket by hand (raw TCP): upgrade, masked client frames, unmasked server frames ----------

function clientFrame(text, opcode = 1) {
  const payload = Buffer.from(text);
  const len = payload.length;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = 0x80 | len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 0x80 | 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = 0x80 | opcode;
  const mask = randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

/** Splits server → client bytes into frames: { opcode, text } (close frames: { code, reason }). */
class FrameReader {
  buf = Buffer.alloc(0);
  frames = [];
  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const opcode = this.buf[0] & 0x0f;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (opcode === 8) this.frames.push({ opcode, code: len >= 2 ? payload.readUInt16BE(0) : null, reason: payload.subarray(2).toString() });
      else this.frames.push({ opcode, text: payload.toString() });
    }
  }
}

/**
 * Opens a WebSocket by hand: `headers` may override Host and add Origin etc. Resolves with the
 * upgrade's HTTP status and, for 101, a frame reader fed from the socket.
 */
async function rawWebSocket(port, path, headers = {}) {
  const socket = await connect(port);
  const h = {
    Host: `127.0.0.1:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  socket.write(`GET ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`);
  const reader = new FrameReader();
  let head = null;
  let pending = Buffer.alloc(0);
  const gotHead = new Promise((resolveHead) => {
    socket.on("data", (d) => {
      if (head !== null) return reader.push(d);
      pending = Buffer.concat([pending, d]);
      const end = pending.indexOf("\r\n\r\n");
      if (end < 0) return;
      head = pending.subarray(0, end).toString("latin1");
      reader.push(pending.subarray(end + 4));
      resolveHead();
    });
    socket.once("close", resolveHead);
  });
  await within(5000, `upgrade ${path}`, gotHead);
  const status = head ? Number(head.split(" ")[1]) : null;
  return {
    socket,
    status,
    reader,
    send: (obj) => socket.write(clientFrame(JSON.stringify(obj))),
    /** Waits for a frame (after the `from`-th) matching `pred`. */
    async frame(pred = () => true, ms = 3000, from = 0) {
      const t0 = Date.now();
      while (Date.now() - t0 < ms) {
        const f = reader.frames.slice(from).find(pred);
        if (f) return f;
        if (socket.destroyed) break;
        await sleep(10);
      }
      return null;
    },
  };
}

/** A `ws` client: resolves once the welcome frame arrived. */
async function wsClient(url) {
  const ws = track(new WebSocket(url));
  ws.on("error", () => {});
  ws.frames = [];
  ws.closedWith = null;
  ws.on("message", (d) => ws.frames.push(d.toString()));
  ws.on("close", (code, reason) => (ws.closedWith = { code, reason: reason.toString() }));
  const t0 = Date.now();
  while (!ws.frames.length && !ws.closedWith && Date.now() - t0 < 5000) await sleep(10);
  if (!ws.frames.length) throw new Error(`no welcome frame from ${url}`);
  return ws;
}

async function until(pred, ms, step = 20) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const v = await pred();
    if (v) return v;
    await sleep(step);
  }
  return null;
}

// ---- reading a server's stderr --------------------------------------------------------------------

function stderrSummary(text) {
  const lines = text.split("\n").filter((l) => l.trim());
  const stack = lines.filter((l) => l.startsWith("    at ")).length;
  // Node's crash report: source line, caret, then "RangeError: …"; a logged error starts with its name.
  const error = lines.find((l) => /^(\S+: )?\w*(Error|Exception)\b.*:/.test(l.trim())) ?? lines.find((l) => /Error|ERR_/.test(l) && !l.startsWith("    at "));
  return { lines: lines.length, stack, first: (error ?? lines[0] ?? "").trim().slice(0, 200) };
}

// ---- scenarios ----------------------------------------------------------------------------------

/** 1. One WebSocket frame with long non-ASCII text in it, three places. */
async function crash(fig) {
  // 401 bytes: a channel refused under either rule (printable ASCII before, 1-256 bytes of UTF-8 after),
  // and long enough non-ASCII text that the close reason quoting it passes 123 bytes.
  const long = "/" + "é".repeat(200);
  const variants = {
    channel: { [long]: -1 },
    "id value": { "/ok": long },
    __seq: { __seq: long },
  };
  for (const [name, subscribe] of Object.entries(variants)) {
    await withServer(cli(), async (s) => {
      const ws = await wsClient(`${s.wsUrl}/c1/ws`);
      ws.send(JSON.stringify({ subscribe }));
      await until(() => ws.closedWith, 3000);
      await Promise.race([s.child.exited, sleep(1000)]);
      const err = stderrSummary(s.child.stderr);
      fig(`${name}: server exited`, !s.child.alive);
      fig(`${name}: exit code`, s.child.exit ? s.child.exit.code ?? s.child.exit.signal : "running");
      fig(`${name}: stderr`, err.first || "(nothing)");
      fig(`${name}: client saw close`, ws.closedWith ? `${ws.closedWith.code} ${ws.closedWith.reason}`.trim() : "still open after 3 s");
    });
  }
}

function pipelined(v, s, conn, n) {
  let out = "";
  for (let j = 0; j < n; j++) {
    const id = `p${conn}x${j}`;
    if (v.kind === "sse") out += httpRequest("GET", `${s.base}/${id}/sse?${v.body}`, s.port);
    else out += httpRequest("POST", `${s.base}/${id}/poll`, s.port, { headers: { ...FORM, ...(v.kind === "long-poll" ? { "Dont-Chunk": "true" } : {}) }, body: v.body });
  }
  return out;
}

// A Dont-Chunk long-poll asking -1 is answered at once (it is told where the channel stands, as in
// message_bus), so it is never held; asking 0 on an empty channel is what holds one.
const PIPELINED = [
  { label: "sse", kind: "sse", body: "/orphan=-1" },
  { label: "chunked", kind: "chunked", body: "/orphan=-1" },
  { label: "long-poll -1", kind: "long-poll", body: "/orphan=-1" },
  { label: "long-poll 0 (held)", kind: "long-poll", body: "/orphan=0" },
];

/** 2. K connections, each 300 pipelined subscriptions in one write, cut after 500 ms. */
async function pipelinedOrphans(fig) {
  for (const v of PIPELINED) {
    for (const K of [10, 100]) {
      await withServer(attackServer({}), async (s) => {
        const label = `${v.label} K=${K}`;
        const count = async () => (await stats(s)).subscribers[v.kind];
        const before = await mem(s);
        const conns = await Promise.all(Array.from({ length: K }, () => connect(s.port)));
        conns.forEach((c, i) => c.write(pipelined(v, s, i, 300)));
        await sleep(500);
        const open = await count();
        for (const c of conns) c.destroy();
        const closedAt = Date.now();
        const right = await count();
        await sleep(1000);
        const after1s = await count();
        const after = await mem(s);
        fig(`${label}: requests sent`, K * 300);
        fig(`${label}: ${v.kind} subscribers before the close / right after / 1 s after`, `${open} / ${right} / ${after1s}`);
        fig(`${label}: memory after GC before (MB)`, before);
        fig(`${label}: memory after GC 1 s after the close (MB)`, after);
        if (v.kind !== "sse") {
          const gone = right === 0 || (await until(async () => (await count()) === 0, 30_000, 500));
          fig(`${label}: all gone after (s)`, right === 0 ? 0 : gone ? Math.round((Date.now() - closedAt) / 100) / 10 : "> 30");
        }
      });
    }
  }
}

const TEN = Array.from({ length: 10 }, (_, i) => `/ch${i}`);

/** A client that asks for `positions` on `transport` and never reads. */
async function nonReader(s, transport, id, positions) {
  if (transport === "websocket") {
    const ws = await rawWebSocket(s.port, `${s.base}/${id}/ws`);
    ws.send({ subscribe: positions });
    ws.socket.pause();
    return ws.socket;
  }
  const socket = await connect(s.port);
  const body = pairs(positions);
  if (transport === "sse") socket.write(httpRequest("GET", `${s.base}/${id}/sse?${body}`, s.port));
  else {
    const path = `${s.base}/${id}/poll${transport === "poll" ? "?dlp=t" : ""}`;
    const headers = { ...FORM, ...(transport === "long-poll" ? { "Dont-Chunk": "true" } : {}) };
    socket.write(httpRequest("POST", path, s.port, { headers, body }));
  }
  socket.pause();
  return socket;
}

/** 3. 50 never-reading clients per transport, each asking for a 10 MB backlog. */
async function slowReaders(fig) {
  for (const transport of ["sse", "websocket", "chunked", "long-poll", "poll"]) {
    await withServer(attackServer({}), async (s) => {
      const fill = await control(s, "publish", { channels: TEN, count: 1000, bytes: 1024 });
      const base = await mem(s);
      const all0 = Object.fromEntries(TEN.map((ch) => [ch, 0]));
      const clients = [];
      for (let i = 0; i < 50; i++) clients.push(await nonReader(s, transport, `slow${i}`, all0));
      await sleep(5000);
      const connected = await mem(s);
      const kernel = kernelQueues(s.port);
      const subs = (await stats(s)).subscribers;
      for (const c of clients) c.destroy();
      await sleep(5000);
      const cut = await mem(s);
      fig(`${transport}: backlog filled`, `${fill.published} messages in ${fill.ms} ms`);
      fig(`${transport}: baseline (MB)`, base);
      fig(`${transport}: 5 s after 50 connected (MB)`, connected);
      fig(`${transport}: kernel then (MB)`, kernel);
      fig(`${transport}: subscribers then`, subs[transport]);
      fig(`${transport}: 5 s after they were cut (MB)`, cut);
    });
  }
}

/** 3b. 100 never-reading live subscribers per streaming transport, 1 KB × 200 msg/s for 10 s. */
async function slowReadersLive(fig) {
  for (const transport of ["sse", "websocket", "chunked"]) {
    await withServer(attackServer({}), async (s) => {
      const base = await mem(s);
      const clients = [];
      for (let i = 0; i < 100; i++) clients.push(await nonReader(s, transport, `live${i}`, { "/live": -1 }));
      await sleep(500);
      const subscribed = (await stats(s)).subscribers[transport];
      await control(s, "rate", { channel: "/live", bytes: 1024, rate: 200, seconds: 10 });
      let peak = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < 15_000) {
        await sleep(1000);
        peak = Math.max(peak, (await mem(s, false)).rss);
        if ((await getJson(`${s.control}/rate`)).done) break;
      }
      const during = await mem(s);
      const kernel = kernelQueues(s.port);
      const left = (await stats(s)).subscribers[transport];
      for (const c of clients) c.destroy();
      await sleep(5000);
      const after = await mem(s);
      fig(`${transport}: baseline (MB)`, base);
      fig(`${transport}: subscribers before / after publishing`, `${subscribed} / ${left}`);
      fig(`${transport}: peak RSS while publishing (MB, sampled 1/s)`, peak);
      fig(`${transport}: at the end, clients still connected (MB)`, during);
      fig(`${transport}: kernel then (MB)`, kernel);
      fig(`${transport}: 5 s after they were cut (MB)`, after);
    });
  }
}

/** 4. Bodies that never arrive: Content-Length 10000, 100 bytes, socket destroyed. */
async function abortedBodies(fig) {
  await withServer(cli(), async (s) => {
    const one = async (i) => {
      const socket = await connect(s.port);
      const head = `POST ${s.base}/c${i}/poll HTTP/1.1\r\nHost: 127.0.0.1:${s.port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n`;
      socket.write(head + "/".padEnd(100, "a")); // 100 of the 10,000 bytes promised
      await sleep(100);
      socket.destroy();
    };
    for (let i = 0; i < 200; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => one(i + j)));
    await sleep(1500);
    const err = stderrSummary(s.child.stderr);
    fig("requests", 200);
    fig("server alive", s.child.alive);
    fig("stderr lines", err.lines);
    fig("stack-trace lines (\"    at \")", err.stack);
    fig("first error line", err.first || "(none)");
  });
}

/** 5. Another user takes over a client id's long-poll with a huge __seq. */
async function seqHijack(fig) {
  await withServer(attackServer({ userHeader: "x-user", longPollTimeout: 5000 }), async (s) => {
    const poll = (user, seq) => {
      const t0 = Date.now();
      return request(`${s.url}/victim/poll`, {
        headers: { ...FORM, "Dont-Chunk": "true", "x-user": user },
        body: `/seq=0&__seq=${seq}`,
        ms: 8000,
      }).then(
        (r) => ({ ms: Date.now() - t0, at: Date.now(), status: r.status, body: r.text.slice(0, 160) }),
        (e) => ({ ms: Date.now() - t0, at: Date.now(), error: e.message }),
      );
    };
    const victim1 = poll("alice", 1);
    await sleep(300);
    const attacker = poll("mallory", Number.MAX_SAFE_INTEGER);
    const sentAt = Date.now();
    const first = await Promise.race([victim1, sleep(1000).then(() => null)]);
    fig("victim's held poll (__seq=1) when the attacker's arrives", first ? `answered ${first.at - sentAt} ms after it: ${first.body ?? first.error}` : "still held 1 s later");
    const victim2 = poll("alice", 2);
    await sleep(1000);
    await control(s, "publish", { channel: "/seq", data: { hello: "alice" } });
    const next = await victim2;
    fig("victim's next poll (__seq=2): answered after (ms)", next.ms);
    fig("victim's next poll (__seq=2): body", next.body ?? next.error);
    fig("victim's next poll got the message published 1 s in", /hello/.test(next.body ?? ""));
    const att = await attacker;
    fig("attacker's poll", att.error ? att.error : `${att.status} after ${att.ms} ms: ${att.body}`);
  });
}

/** 6. 40 subscribe frames of 100 channels each, back to back, with a slow async authorize. */
async function wsFrameBurst(fig) {
  await withServer(attackServer({ authorizeDelayMs: 10, limits: { maxChannels: 100 } }), async (s) => {
    const ws = await wsClient(`${s.wsUrl}/burst/ws`);
    for (let f = 0; f < 40; f++) {
      const subscribe = Object.fromEntries(Array.from({ length: 100 }, (_, j) => [`/b${f}_${j}`, -1]));
      ws.send(JSON.stringify({ subscribe }));
    }
    await sleep(2000);
    fig("channels in /stats after 2 s", (await stats(s)).channels);
    await sleep(3000);
    fig("channels in /stats after 5 s", (await stats(s)).channels);
    fig("socket closed", ws.closedWith ? `${ws.closedWith.code} ${ws.closedWith.reason}` : "no, still open");
    fig("frames received (welcome included)", ws.frames.length);
  });
}

/** 7. A Host header that smuggles another path: whose client id does the socket get? */
async function hostHeader(fig) {
  await withServer(attackServer({}), async (s) => {
    const smuggled = await rawWebSocket(s.port, `${s.base}/attacker/ws`, { Host: `127.0.0.1:${s.port}${s.base}/victim/ws?x=` });
    const honest = await rawWebSocket(s.port, `${s.base}/attacker/ws`);
    fig("upgrade status, smuggling Host", smuggled.status);
    fig("upgrade status, honest Host (control)", honest.status);
    const subscribed = [];
    for (const ws of [smuggled, honest]) {
      if (ws.status !== 101) continue;
      const from = ws.reader.frames.length;
      ws.send({ subscribe: { "/hh": -1 } });
      subscribed.push(ws.frame(() => true, 3000, from));
    }
    await Promise.all(subscribed);
    await control(s, "publish", { channel: "/hh", data: { secret: "for victim" }, opts: { clientIds: ["victim"] } });
    const got = async (ws) => ws.status === 101 && !!(await ws.frame((f) => f.text?.includes("for victim"), 2000));
    fig("message for clientIds [victim] reached the smuggling socket", await got(smuggled));
    fig("… reached the honest attacker socket (control)", await got(honest));
  });
}

/** 8. The publish token with a lower-case scheme. */
async function token(fig) {
  await withServer(cli(["--publish-token", TOKEN]), async (s) => {
    const body = JSON.stringify({ channel: "/t", data: 1 });
    for (const auth of [`bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Bearer ${TOKEN}`]) {
      const r = await request(`${s.url}/publish`, { headers: { Authorization: auth, "Content-Type": "application/json" }, body });
      fig(`"${auth.split(" ")[0]} T" → status`, r.status);
    }
  });
}

function headerFigure(r) {
  return `${r.status}; nosniff: ${r.headers.get("x-content-type-options") ?? "–"}; Cache-Control: ${r.headers.get("cache-control") ?? "–"}`;
}

/** The status and headers of a response that stays open; the body is not waited for. */
async function streamHead(url, init) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const res = await fetch(url, { ...init, signal: ctl.signal });
    return { status: res.status, headers: res.headers };
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
}

/** 9. nosniff and Cache-Control on every kind of answer. */
async function headers(fig) {
  await withServer(cli(["--publish-token", TOKEN]), async (s) => {
    const publish = () =>
      request(`${s.url}/publish`, { headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" }, body: JSON.stringify({ channel: "/h", data: 1 }) });
    await publish();
    fig("poll (?dlp=t)", headerFigure(await request(`${s.url}/h1/poll?dlp=t`, { headers: FORM, body: "/h=-1" })));
    fig("long-poll answer, backlog at once", headerFigure(await request(`${s.url}/h2/poll`, { headers: { ...FORM, "Dont-Chunk": "true" }, body: "/h=0" })));
    const held = request(`${s.url}/h3/poll`, { headers: { ...FORM, "Dont-Chunk": "true" }, body: "/h=1" });
    await sleep(300);
    await publish();
    fig("long-poll answer, held then answered", headerFigure(await held));
    fig("chunked long-poll", headerFigure(await streamHead(`${s.url}/h4/poll`, { method: "POST", headers: FORM, body: "/h=2" })));
    fig("sse", headerFigure(await streamHead(`${s.url}/h5/sse?/h=-1`)));
    fig("400 (bad channel)", headerFigure(await request(`${s.url}/h6/poll?dlp=t`, { headers: FORM, body: "nochannel=1" })));
    fig("404 (unknown path)", headerFigure(await request(`${s.url}/nothing/here`, { method: "GET" })));
    fig("413 (70 KB body)", headerFigure(await request(`${s.url}/h7/poll?dlp=t`, { headers: FORM, body: `/h=-1&/pad=${"1".repeat(70_000)}` })));
  });
}

/** 10. Published data nested 10,000 (and 100,000) arrays deep. */
async function deepNesting(fig) {
  await withServer(cli(["--publish-token", TOKEN]), async (s) => {
    for (const depth of [10_000, 100_000]) {
      const before = s.child.stderr.length;
      const body = `{"channel":"/deep","data":${"[".repeat(depth)}${"]".repeat(depth)}}`;
      const r = await request(`${s.url}/publish`, { headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" }, body }).catch((e) => ({ status: e.message, text: "" }));
      await sleep(300);
      const err = stderrSummary(s.child.stderr.slice(before));
      fig(`depth ${depth}: status`, r.status);
      fig(`depth ${depth}: body`, r.text.slice(0, 120));
      fig(`depth ${depth}: server logged`, err.lines ? `${err.lines} lines (${err.stack} stack): ${err.first}` : "nothing");
      fig(`depth ${depth}: server alive`, s.child.alive);
    }
  });
}

/** 11. A plain-http page's Origin on what the TLS proxy says is https. */
async function originScheme(fig) {
  await withServer(cli(), async (s) => {
    const host = `127.0.0.1:${s.port}`;
    const cases = {
      "Origin http://host, X-Forwarded-Proto https": { Origin: `http://${host}`, "X-Forwarded-Proto": "https" },
      "Origin https://host, X-Forwarded-Proto https (control)": { Origin: `https://${host}`, "X-Forwarded-Proto": "https" },
      "Origin http://host, no X-Forwarded-Proto (control)": { Origin: `http://${host}` },
      "Origin http://evil.example (control)": { Origin: "http://evil.example" },
    };
    for (const [name, h] of Object.entries(cases)) {
      const ws = await rawWebSocket(s.port, `${s.base}/o1/ws`, h);
      fig(name, ws.status);
      ws.socket.destroy();
    }
  });
}

/** 12. Non-ASCII channel names: accepted? delivered exactly over poll, SSE and WebSocket? */
async function unicodeChannels(fig) {
  await withServer(attackServer({}), async (s) => {
    // The ASCII channel is the control: it shows the delivery checks themselves work.
    for (const ch of ["/café bar", "/日本語/チャット", "/emoji😀", "/plain-ascii"]) {
      const form = await request(`${s.url}/u1/poll?dlp=t`, { headers: FORM, body: new URLSearchParams({ [ch]: "-1" }).toString() });
      const json = await request(`${s.url}/u2/poll?dlp=t`, { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ [ch]: -1 }) });
      fig(`${ch}: subscribe, form`, `${form.status}${form.status === 200 ? "" : " " + form.text.slice(0, 100)}`);
      fig(`${ch}: subscribe, JSON`, json.status);
      const pub = await control(s, "publish", { channel: ch, data: { name: ch } });
      fig(`${ch}: publish (bus.publish)`, pub.status === 200 ? "ok" : pub.error.slice(0, 100));
      if ((form.status !== 200 && json.status !== 200) || pub.status !== 200) continue;
      fig(`${ch}: delivered over poll, name exact`, await deliveredPoll(s, ch));
      fig(`${ch}: delivered over SSE, name exact`, await deliveredSse(s, ch));
      fig(`${ch}: delivered over WebSocket, name exact`, await deliveredWs(s, ch));
    }
  });
}

const exact = (ch) => (m) => m.channel === ch && m.data?.name === ch;

async function deliveredPoll(s, ch) {
  const r = await request(`${s.url}/u3/poll?dlp=t`, { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ [ch]: 0 }) });
  if (r.status !== 200) return `status ${r.status}`;
  return JSON.parse(r.text).some(exact(ch));
}

async function deliveredSse(s, ch) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 3000);
  try {
    const res = await fetch(`${s.url}/u4/sse?${encodeURIComponent(ch)}=0`, { signal: ctl.signal });
    if (res.status !== 200) return `status ${res.status}`;
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of res.body) {
      text += decoder.decode(chunk, { stream: true });
      const events = text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
      if (events.some(exact(ch))) return true;
    }
    return false;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    ctl.abort();
  }
}

async function deliveredWs(s, ch) {
  const ws = await wsClient(`${s.wsUrl}/u5/ws`);
  try {
    ws.send(JSON.stringify({ subscribe: { [ch]: 0 } }));
    const ok = await until(() => ws.frames.some((f) => JSON.parse(f).some(exact(ch))), 3000);
    return ok ? true : ws.closedWith ? `closed ${ws.closedWith.code} ${ws.closedWith.reason}` : false;
  } finally {
    ws.terminate();
  }
}

const SCENARIOS = {
  crash,
  "pipelined-orphans": pipelinedOrphans,
  "slow-readers": slowReaders,
  "slow-readers-live": slowReadersLive,
  "aborted-bodies": abortedBodies,
  "seq-hijack": seqHijack,
  "ws-frame-burst": wsFrameBurst,
  "host-header": hostHeader,
  token,
  headers,
  "deep-nesting": deepNesting,
  "origin-scheme": originScheme,
  "unicode-channels": unicodeChannels,
};

// ---- output -------------------------------------------------------------------------------------

function show(v) {
  if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} ${x}`).join(" · ");
  return String(v);
}

function table(results) {
  const rows = ["| scenario | figure | value |", "|---|---|---|"];
  const cell = (x) => show(x).replace(/\|/g, "\\|").replace(/\n/g, " ");
  for (const [name, r] of Object.entries(results.scenarios)) {
    for (const [figure, value] of Object.entries(r.figures)) rows.push(`| ${name} | ${cell(figure)} | ${cell(value)} |`);
  }
  return rows.join("\n");
}

async function main() {
  if (!existsSync(`${ROOT}/dist/server/cli.js`)) throw new Error(`${ROOT}/dist/server/cli.js is missing: build that checkout first`);
  const names = args.only ? args.only.split(",").map((x) => x.trim()) : Object.keys(SCENARIOS);
  const unknown = names.filter((n) => !SCENARIOS[n]);
  if (unknown.length) throw new Error(`unknown scenario(s) ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`);
  const results = {
    meta: { root: ROOT, date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, loadBefore: os.loadavg().map((x) => +x.toFixed(2)) },
    scenarios: {},
  };
  for (const name of names) {
    const figures = {};
    const t0 = Date.now();
    process.stderr.write(`attack: ${name} …\n`);
    try {
      await SCENARIOS[name]((figure, value) => (figures[figure] = value));
    } catch (e) {
      figures.error = e?.message ?? String(e);
    } finally {
      closeSockets();
      await Promise.all([...children].map((c) => c.stop()));
    }
    results.scenarios[name] = { seconds: Math.round((Date.now() - t0) / 100) / 10, figures };
  }
  results.meta.loadAfter = os.loadavg().map((x) => +x.toFixed(2));
  const md = table(results);
  process.stdout.write(md + "\n");
  const write = (file, text) => {
    mkdirSync(dirname(resolve(file)), { recursive: true });
    writeFileSync(file, text);
  };
  if (args.out) write(args.out, JSON.stringify(results, null, 2) + "\n");
  if (args.md) write(args.md, `Attack run ${results.meta.date} against ${ROOT} (Node ${results.meta.node}, load ${results.meta.loadBefore.join(" ")})\n\n${md}\n`);
}

main()
  .catch((e) => {
    process.stderr.write(`attack: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    closeSockets();
    killChildren();
    // fetch's keep-alive sockets must not hold the process open.
    setTimeout(() => process.exit(), 100).unref();
  });
