// cometbus as a user would run it: MessageBus on node:http, routes at /mb, HTTP publishing with a
// token, and a Hono hello-world on the same server (the poll-rps yardstick).
import { Hono } from "hono";
import { ready } from "./common.mjs";

const dist = process.env.COMETBUS_DIST ?? new URL("../.dist/", import.meta.url).href;
const { MessageBus } = await import(new URL("server/index.js", dist.endsWith("/") ? dist : dist + "/").href);

// No per-client request rate limit: bench/requests.mjs measures how fast one client can go.
// COMETBUS_METRICS=1 (bench/metrics-cost.mjs): metrics on, scraped every second as a busy Prometheus would.
const metrics = process.env.COMETBUS_METRICS === "1";
const bus = new MessageBus({ base: "/mb", publishToken: "bench", maxBacklogSize: 20_000, maxGlobalBacklogSize: 20_000, limits: { maxRequestsPerSecond: 1e9 }, metrics });
await bus.ready();
if (metrics) {
  const registry = await bus.metricsRegistry();
  setInterval(() => void registry.metrics(), 1000).unref();
}
// bench/requests.mjs: one request's round trip, the handler doing nothing but answer.
bus.handle("echo", (data) => data);
const app = new Hono();
app.get("/hello", (c) => c.text("Hello Hono!"));
app.route("/mb", bus.routes());
const server = await bus.listen(0, "127.0.0.1", app);
ready(server.port);
