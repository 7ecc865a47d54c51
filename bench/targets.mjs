// Every (server, transport) the bench can drive: how to start it, subscribe, publish, and ask the
// server how many subscribers it holds (the confirmation for clients that cannot see it themselves).
import { existsSync } from "node:fs";
import { nchanInstalled } from "./servers/nchan.mjs";

const json = { "Content-Type": "application/json" };

async function get(port, path, headers) {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return r.ok ? r.text() : null;
}

const cometbus = (transport, client, kind) => ({
  server: "cometbus",
  client,
  publish: (data) => ({
    path: "/mb/publish",
    headers: { ...json, Authorization: "Bearer bench" },
    body: `{"channel":"/bench","data":${data}}`,
  }),
  count: async (port) => JSON.parse(await get(port, "/mb/stats")).subscribers[kind],
});

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
