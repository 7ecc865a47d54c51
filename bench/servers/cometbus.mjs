// cometbus as a user would run it: MessageBus on node:http, routes at /mb, HTTP publishing with a
// token, and a Hono hello-world on the same server (the poll-rps yardstick).
import { Hono } from "hono";
import { ready } from "./common.mjs";

const dist = process.env.COMETBUS_DIST ?? new URL("../.dist/", import.meta.url).href;
const { MessageBus } = await import(new URL("server/index.js", dist.endsWith("/") ? dist : dist + "/").href);

const bus = new MessageBus({ base: "/mb", publishToken: "bench", maxBacklogSize: 20_000, maxGlobalBacklogSize: 20_000 });
await bus.ready();
const app = new Hono();
app.get("/hello", (c) => c.text("Hello Hono!"));
app.route("/mb", bus.routes());
const server = await bus.listen(0, "127.0.0.1", app);
ready(server.port);
