// cometbus as a user would run it: MessageBus on node:http, routes at /mb, HTTP publishing with a
// token, and a Hono hello-world on the same server (the poll-rps yardstick).
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
const app = new Hono();
app.get("/hello", (c) => c.text("Hello Hono!"));
app.route("/mb", bus.routes());
const server = await bus.listen(0, "127.0.0.1", app);
ready(server.port);
