// cometbus as a user would run it: MessageBus on node:http, routes at /mb, HTTP publishing with a
// token; for poll-rps, a Hono hello-world on the same server (COMETBUS_SERVE below).
import { Hono } from "hono";
import { ready } from "./common.mjs";

const dist = process.env.COMETBUS_DIST ?? new URL("../.dist/", import.meta.url).href;
const { MessageBus } = await import(new URL("server/index.js", dist.endsWith("/") ? dist : dist + "/").href);

// No per-client request rate limit: bench/requests.mjs measures how fast one client can go.
// COMETBUS_DEFLATE=1: permessage-deflate on (the `… deflate` targets). An older build (BENCH_BEFORE_DIST)
// does not know the option and ignores it. COMETBUS_METRICS=1 (bench/metrics-cost.mjs): metrics on,
// scraped every second as a busy Prometheus would.
const metrics = process.env.COMETBUS_METRICS === "1";
const bus = new MessageBus({
  base: "/mb",
  publishToken: "bench",
  maxBacklogSize: 20_000,
  maxGlobalBacklogSize: 20_000,
  limits: { maxRequestsPerSecond: 1e9 },
  perMessageDeflate: process.env.COMETBUS_DEFLATE === "1",
  metrics,
  // COMETBUS_FLUSH_DELAY: the adaptive flush's bound (bench/quick-fanout.mjs compares settings).
  ...(process.env.COMETBUS_FLUSH_DELAY ? { flushDelay: Number(process.env.COMETBUS_FLUSH_DELAY) } : {}),
});
await bus.ready();
if (metrics) {
  const registry = await bus.metricsRegistry();
  setInterval(() => void registry.metrics(), 1000).unref();
}
// bench/requests.mjs (COMETBUS_REQUESTS=1): one request's round trip, the handler doing nothing but
// answer. Only there: a bus that takes requests keeps each WebSocket's upgrade Context for its
// handlers (`ctx.c`), which the other cells, the idle ones above all, are not about.
if (process.env.COMETBUS_REQUESTS === "1") bus.handle("echo", (data) => data);
// How the bus is served (COMETBUS_SERVE):
//   "listen" (default): `bus.listen()`, the bus's own app, as `cometbus serve` runs it;
//   "beside-hono": a Hono app beside the bus on one node:http server, the bus first
//     (`bus.nodeHandler()`, the rest to Hono): the poll-rps yardstick, a hello-world on the same server;
//   "in-hono": the routes mounted in the app (`app.route("/mb", bus.routes())`), so every request,
//     polls too, goes through the app and its middleware.
// An older build (BENCH_BEFORE_DIST) is served the way it always was: "in-hono".
const serve = process.env.COMETBUS_SERVE ?? "listen";
const app = new Hono();
app.get("/hello", (c) => c.text("Hello Hono!"));
let port;
if (serve === "beside-hono" && !process.env.COMETBUS_DIST) {
  const { createServer } = await import("node:http");
  const { getRequestListener } = await import("@hono/node-server");
  const hono = getRequestListener(app.fetch);
  const busFirst = bus.nodeHandler();
  const server = createServer((req, res) => busFirst(req, res, () => hono(req, res)));
  server.keepAliveTimeout = 65_000;
  bus.attach(server);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = server.address().port;
} else if (serve === "listen" && !process.env.COMETBUS_DIST) {
  port = (await bus.listen(0, "127.0.0.1")).port;
} else {
  app.route("/mb", bus.routes());
  port = (await bus.listen(0, "127.0.0.1", app)).port;
}
ready(port);
