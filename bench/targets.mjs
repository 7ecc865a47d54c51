// Every (server, transport) the bench can drive: how to start it, subscribe, publish, and ask the
// server how many subscribers it holds (the confirmation for clients that cannot see it themselves).
import { existsSync } from "node:fs";
import { nchanInstalled } from "./servers/nchan.mjs";

const json = { "Content-Type": "application/json" };

async function get(port, path, headers) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return r.ok ? r.text() : null;
}

/**
 * About 1 KB (1,034 bytes) of ordinary JSON (records with ids, names, times, flags), added to every message of the
 * `cometbus 1k …` targets: what permessage-deflate is measured on (a run of one letter would flatter it).
 */
export const KB_JSON = JSON.stringify(
  Array.from({ length: 11 }, (_, i) => ({ id: 48120 + i * 37, user: `user${(i * 7919) % 1000}`, name: ["Ada", "Grace", "Linus", "Barbara", "Ken"][i % 5] + " " + ["Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson"][(i * 3) % 5], at: 1764590000 + i * 61, read: i % 3 === 0, score: (i * 17.25) % 100 })),
);

const cometbus = (transport, client, kind, { env, padded = false } = {}) => ({
  server: "cometbus",
  env,
  client,
  publish: (data) => ({
    path: "/mb/publish",
    headers: { ...json, Authorization: "Bearer bench" },
    body: `{"channel":"/bench","data":${padded ? data.slice(0, -1) + `,"p":${KB_JSON}}` : data}}`,
  }),
  count: async (port) => JSON.parse(await get(port, "/mb/stats")).subscribers[kind],
});

// BENCH_BEFORE_DIST: another build of cometbus (an earlier commit compiled by tsc) run as `before …`
// targets in the same run, so a change is measured against what it changed, interleaved.
const BEFORE = process.env.BENCH_BEFORE_DIST;
const before = BEFORE
  ? {
      "before ws": cometbus("ws", "cometbusWs", "websocket", { env: { COMETBUS_DIST: BEFORE } }),
      "before sse": cometbus("sse", "cometbusSse", "sse", { env: { COMETBUS_DIST: BEFORE } }),
      "before long-poll": cometbus("long-poll", "cometbusLongPoll", "long-poll", { env: { COMETBUS_DIST: BEFORE } }),
    }
  : {};

const plain = (server, client, serverCounts = true) => ({
  server,
  client,
  publish: (data) => ({ path: "/publish", headers: json, body: data }),
  count: serverCounts ? async (port) => Number(await get(port, "/count")) : null,
});

const nchan = (client) => ({
  server: "nchan",
  client,
  publish: (data) => ({ path: "/publish", headers: json, body: data }),
  count: async (port) => JSON.parse(await get(port, "/publish", { Accept: "application/json" })).subscribers,
});

/**
 * The runtime dimension: cometbus's WebSocket and SSE on Bun's and Deno's own servers, and the bare
 * baseline on each (bench/servers/bare-web.mjs), where the runtime's npm package is installed.
 */
function runtimeTargets(runtime) {
  if (!existsSync(new URL(`../node_modules/.bin/${runtime}`, import.meta.url))) return {};
  const on = (t) => ({ ...t, runtime });
  return {
    [`cometbus ws · ${runtime}`]: on(cometbus("ws", "cometbusWs", "websocket")),
    [`cometbus sse · ${runtime}`]: on(cometbus("sse", "cometbusSse", "sse")),
    [`bare ws · ${runtime}`]: on(plain("bare-web", "bareWs")),
    [`bare sse · ${runtime}`]: on(plain("bare-web", "bareSse")),
  };
}

export const TARGETS = {
  "cometbus ws": cometbus("ws", "cometbusWs", "websocket"),
  "cometbus sse": cometbus("sse", "cometbusSse", "sse"),
  "cometbus long-poll": cometbus("long-poll", "cometbusLongPoll", "long-poll"),
  "cometbus chunked": cometbus("chunked", "cometbusChunked", "chunked"),
  // The same 1 KB JSON message without and with permessage-deflate (negotiated by every client).
  "cometbus 1k ws": cometbus("ws", "cometbusWsDeflate", "websocket", { padded: true }),
  "cometbus 1k ws deflate": cometbus("ws", "cometbusWsDeflate", "websocket", { padded: true, env: { COMETBUS_DEFLATE: "1" } }),
  ...before,
  "bare ws": plain("bare-ws", "bareWs"),
  "bare sse": plain("bare-sse", "bareSse"),
  "bare long-poll": plain("bare-lp", "bareLongPoll"),
  "socket.io ws": plain("socketio", "socketioWs"),
  "socket.io polling": plain("socketio", "socketioPolling"),
  "faye ws": plain("faye", "fayeWs"),
  "faye long-poll": plain("faye", "fayeLongPoll"),
  ...runtimeTargets("bun"),
  ...runtimeTargets("deno"),
  ...(nchanInstalled()
    ? { "nchan ws": nchan("nchanWs"), "nchan sse": nchan("nchanSse"), "nchan long-poll": nchan("nchanLongPoll") }
    : {}),
};

/** The message body every target publishes: a sequence number and the send time in µs. */
export const stamp = (seq, us) => `{"s":${seq},"t":${us}}`;
