import { createHash, timingSafeEqual } from "node:crypto";
import { Hono, type Context } from "hono";
import { ProtocolError } from "../../src/errors.js";
import { BackendUnavailableError, BusClosedError } from "../core/backend.js";
import { BUS_HEADERS, NO_CACHE } from "../transports/common.js";
import type { Exchange } from "../transports/io.js";
import { handlePoll } from "../transports/poll.js";
import { handleSse } from "../transports/sse.js";
import { cheapBodyLimit } from "./body-limit.js";
import { clientError, countFallback, ERROR_HEADERS, type ErrorAnswer, refusal, tooLarge } from "./route-answers.js";
import type { RouteBus, RouteRuntime } from "./route-deps.js";
import { readSubscribe } from "./subscribe-request.js";
import { requestRoute } from "./request-route.js";
import { wsRoute } from "./ws-route.js";

type Env = { Variables: { x: Exchange } };

/** An error answer as Hono's JSON (the middleware adds the error headers). */
const errorJson = (c: Context, a: ErrorAnswer) => c.json({ error: a.error }, a.status, a.headers);

/** Every route of the bus, relative to where it is mounted (`base`), served by `runtime`. */
export function createRoutes(bus: RouteBus, runtime: RouteRuntime): Hono {
  const app = new Hono<Env>();
  const limits = bus.transports.limits;
  const header = (c: Context<Env>, name: string) => c.get("x").header(name);
  // The rest of the body is never read, so the connection cannot be reused: say so, or a client's
  // next request on this keep-alive socket fails with "other side closed".
  const limit = cheapBodyLimit(limits.maxBodyBytes, header, (c) => errorJson(c, tooLarge(limits.maxBodyBytes)));
  const publishMax = Math.max(limits.maxBodyBytes, limits.maxMessageBytes + 16 * 1024);
  const publishLimit = cheapBodyLimit(publishMax, header, (c) => errorJson(c, tooLarge(publishMax)));

  app.onError((err, c) => {
    const said = clientError(bus, err);
    if (said) return errorJson(c, said);
    // The client left while its body was read: nobody to answer, nothing went wrong.
    if (runtime.clientLeft(c)) return c.get("x").gone();
    bus.transports.report(err);
    return c.json({ error: "internal error" }, 500);
  });

  app.use(async (c, next) => {
    const x = runtime.exchange(c);
    c.set("x", x);
    countFallback(bus, x.search);
    // A connection with many requests queued behind an open stream (pipelining) is closed.
    if (!runtime.admit(c, limits.maxQueuedRequests)) return x.gone();
    // Hono answers HEAD with the GET route minus its body, but a poll or a stream writes its own.
    if (c.req.method === "HEAD" && /\/(poll|sse|ws)$/.test(c.req.path)) {
      return c.json({ error: "this URL takes GET or POST" }, 405, { Allow: "GET, POST", ...ERROR_HEADERS });
    }
    await next();
    runtime.discardUnreadBody(c);
    // Draining: every answer closes its connection, so the client's next request goes through the
    // load balancer to another process.
    if (bus.draining() && c.res !== x.gone()) c.res.headers.set("Connection", "close");
    // JSON and text bodies are never to be sniffed as HTML; errors are never to be cached. (A response
    // the runtime wrote itself carries its own headers; the marker it returns may be shared: untouched.)
    if (c.res === x.gone() || (c.res as Response & { [BUS_HEADERS]?: true })[BUS_HEADERS]) return;
    const headers = c.res.headers;
    headers.set("X-Content-Type-Options", ERROR_HEADERS["X-Content-Type-Options"]);
    if (c.res.status >= 400 && !headers.has("Cache-Control")) headers.set("Cache-Control", ERROR_HEADERS["Cache-Control"]);
  });

  // message_bus answers preflights with 200; cross-origin use is configured by the app's own CORS middleware.
  app.options("*", (c) => c.text("OK", 200, NO_CACHE));

  /** Load shedding: a new subscription is refused while the process is over its limits. */
  const refused = (c: Context, held: boolean) => {
    const no = refusal(bus, held);
    return no && errorJson(c, no);
  };

  app.on(["GET", "POST"], "/:clientId/poll", limit, async (c) => {
    const x = c.get("x");
    // The query, not the URL: a Host of `dlp=t` would otherwise pass a long-poll for a short poll.
    const no = refused(c, !x.search.includes("dlp=t"));
    if (no) return no;
    const { sub, who } = await readSubscribe(bus, c, x);
    return handlePoll(bus.transports, x, sub, who);
  });

  app.on(["GET", "POST"], "/:clientId/sse", limit, async (c) => {
    const no = refused(c, true);
    if (no) return no;
    const x = c.get("x");
    const { sub, who } = await readSubscribe(bus, c, x);
    return handleSse(bus.transports, x, sub, who);
  });

  app.get("/:clientId/ws", (c) => wsRoute(bus, runtime, c));

  app.post("/:clientId/request", limit, async (c) => refused(c, false) ?? requestRoute(bus, c));

  app.get("/stats", (c) => c.json(bus.stats(), 200, NO_CACHE));

  app.get("/metrics", async (c) => {
    const m = bus.metrics;
    if (!m) return c.json({ error: "metrics are disabled: start the server with --metrics (option metrics)" }, 404);
    if (m.token !== undefined && !bearerMatches(c.req.header("authorization"), m.token)) {
      return c.json({ error: "missing or wrong bearer token" }, 401, { "WWW-Authenticate": "Bearer" });
    }
    const { type, body } = await m.scrape();
    return c.body(body, 200, { ...NO_CACHE, "Content-Type": type });
  });

  // For a load balancer: fails from the moment a drain begins, so it stops sending new connections here.
  app.get("/health", (c) => (bus.leaving() ? c.json({ status: "draining" }, 503, ERROR_HEADERS) : c.json({ status: "ok" }, 200, NO_CACHE)));

  app.post("/publish", publishLimit, async (c) => {
    const token = bus.publishToken;
    if (!token) return c.json({ error: "publishing over HTTP is disabled: start the server with a publish token" }, 404);
    if (!bearerMatches(c.req.header("authorization"), token)) {
      return c.json({ error: "missing or wrong bearer token" }, 401, { "WWW-Authenticate": "Bearer" });
    }
    let body: Record<string, unknown>;
    try {
      body = await c.req.json();
    } catch {
      throw new ProtocolError("invalid JSON body");
    }
    if (!body || typeof body !== "object" || Array.isArray(body)) {
      throw new ProtocolError('publish takes {"channel": "/x", "data": …, "user_ids"?, "group_ids"?, "client_ids"?}');
    }
    let r: { globalId: number; messageId: number };
    try {
      r = await bus.publish(body.channel as string, body.data, {
        userIds: body.user_ids as never,
        groupIds: body.group_ids as never,
        clientIds: body.client_ids as never,
      });
    } catch (e) {
      // A publisher holds the token: the operator's own service, told what the store said.
      if (e instanceof BackendUnavailableError || e instanceof BusClosedError) return c.json({ error: e.message }, 503, { "Retry-After": "1" });
      throw e;
    }
    return c.json({ global_id: r.globalId, message_id: r.messageId });
  });

  let bundle: string | null | undefined;
  app.get("/client.js", (c) => {
    bundle ??= bus.clientBundle();
    if (!bundle) return c.json({ error: "the browser bundle is not built: run npm run build" }, 404);
    return c.body(bundle, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=300" });
  });

  app.all("*", (c) => c.json({ error: "not found" }, 404));
  // The request's exchange is the routes' own business: mounted elsewhere, they are a plain Hono app.
  return app as unknown as Hono;
}

/** The routes mounted at `base` in an app of their own; outside it, a JSON 404 too. */
export function mountRoutes(base: string, routes: Hono): Hono {
  const app = new Hono().route(base, routes);
  app.notFound((c) => c.json({ error: "not found" }, 404, { "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store" }));
  return app;
}

/**
 * `Authorization: Bearer <token>`, the scheme in any case (RFC 9110), compared in constant time:
 * digests of equal length, so neither the token's bytes nor its length leak through timing.
 */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = header ? /^bearer[ \t]+(.*)$/i.exec(header) : null;
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(m ? m[1].trim() : ""), digest(token)) && m !== null;
}
