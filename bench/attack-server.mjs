#!/usr/bin/env node
// The server half of bench/attack.mjs: a cometbus bus (ROOT/dist/server/index.js, memory backend)
// with options the CLI has no flags for, plus a control server of its own on another port.
//
//   node --expose-gc bench/attack-server.mjs --root DIR [--config JSON]
//
// Prints one line, `attack-server {"url":"http://127.0.0.1:P/message-bus","control":"http://127.0.0.1:Q/__attack"}`.
// --config is JSON: any MessageBus option that is plain data (limits, longPollTimeout, …), plus
//   userHeader: "x-user"     → userIdLookup: (c) => c.req.header("x-user")
//   authorizeDelayMs: 10     → authorize: async () => { await sleep(10); return true; }
//
// Control routes (only this process's own node:http server; nothing of the bus is touched):
//   GET  /__attack/mem[?gc=0]  gc() twice (unless gc=0), then process.memoryUsage()
//   GET  /__attack/stats       bus.stats()
//   POST /__attack/publish     {channel | channels: [...], count = 1, bytes?, data?, opts?} → published one after another
//   POST /__attack/rate        {channel, bytes, rate, seconds} → starts publishing at `rate` msg/s, answers at once
//   GET  /__attack/rate        {published, done} of the last rate run
import { createServer } from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: { root: { type: "string", default: "." }, config: { type: "string", default: "{}" } },
});
const root = resolve(values.root);
const { MessageBus } = await import(pathToFileURL(`${root}/dist/server/index.js`).href);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function busOptions(config) {
  const { userHeader, authorizeDelayMs, ...options } = config;
  if (userHeader) options.userIdLookup = (c) => c.req.header(userHeader);
  if (authorizeDelayMs !== undefined) {
    options.authorize = async () => {
      await sleep(authorizeDelayMs);
      return true;
    };
  }
  return options;
}

const bus = new MessageBus(busOptions(JSON.parse(values.config)));
await bus.ready();
const listening = await bus.listen(0, "127.0.0.1");

function payload(bytes, i) {
  // About `bytes` of JSON per message.
  return { i, pad: "x".repeat(Math.max(0, bytes - 20)) };
}

async function publishMany({ channel, channels, count = 1, bytes, data, opts }) {
  const list = channels ?? [channel];
  const t0 = performance.now();
  let published = 0;
  let last = null;
  for (let i = 0; i < count; i++) {
    for (const ch of list) {
      last = await bus.publish(ch, data ?? payload(bytes ?? 100, i), opts ?? {});
      published++;
      // Let the server answer requests and flush now and then.
      if (published % 200 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  return { published, ms: Math.round(performance.now() - t0), last };
}

let rateRun = { published: 0, done: true, errors: 0 };
function startRate({ channel, bytes = 1024, rate = 200, seconds = 10 }) {
  const run = { published: 0, done: false, errors: 0 };
  rateRun = run;
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (run.published < due) {
      bus.publish(channel, payload(bytes, run.published)).catch(() => run.errors++);
      run.published++;
    }
    if (run.published >= total) {
      clearInterval(tick);
      run.done = true;
    }
  }, 10);
  return { started: true, total };
}

function memory(doGc) {
  if (doGc && globalThis.gc) {
    globalThis.gc();
    globalThis.gc();
  }
  return { ...process.memoryUsage(), gc: doGc && !!globalThis.gc };
}

async function readJson(req) {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

const control = createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  const reply = (status, body) => {
    res.writeHead(status, { "Content-Type": "application/json", Connection: "close" });
    res.end(JSON.stringify(body));
  };
  try {
    if (req.method === "GET" && url.pathname === "/__attack/mem") return reply(200, memory(url.searchParams.get("gc") !== "0"));
    if (req.method === "GET" && url.pathname === "/__attack/stats") return reply(200, bus.stats());
    if (req.method === "POST" && url.pathname === "/__attack/publish") return reply(200, await publishMany(await readJson(req)));
    if (req.method === "POST" && url.pathname === "/__attack/rate") return reply(200, startRate(await readJson(req)));
    if (req.method === "GET" && url.pathname === "/__attack/rate") return reply(200, rateRun);
    reply(404, { error: "not found" });
  } catch (e) {
    reply(500, { error: String(e?.message ?? e) });
  }
});
await new Promise((r) => control.listen(0, "127.0.0.1", r));

const out = { url: `${listening.url}${bus.options.base}`, control: `http://127.0.0.1:${control.address().port}/__attack`, pid: process.pid };
process.stdout.write(`attack-server ${JSON.stringify(out)}\n`);

const stop = () => {
  control.close();
  control.closeAllConnections();
  listening.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
// The parent went away without telling us (its stdin pipe closes): go too.
process.stdin.on("end", stop);
process.stdin.resume();
