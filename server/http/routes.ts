import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { Hono, type Context } from "hono";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { cheapBodyLimit } from "./body-limit.js";
import { HTTPException } from "hono/http-exception";
import { ProtocolError } from "../../src/errors.js";
import type { MessageBus } from "../bus.js";
import { readSubscribe } from "./subscribe-request.js";
import { handlePoll } from "../transports/poll.js";
import { handleSse } from "../transports/sse.js";
import { NO_CACHE } from "../transports/common.js";
import { acceptUpgrade } from "./upgrade.js";
import { checkClientId } from "../../src/channel.js";
import { BackendUnavailableError } from "../backends/store-errors.js";
import { admitRequest, clientLeft, discardUnreadBody } from "../node/connection.js";

/** The browser bundle, if it has been built (`npm run build`). */
function clientBundle(): string | null {
  // From dist/server/http/ the bundle is in dist/client/; from the TypeScript sources (tests), in dist/ too.
  for (const path of ["../../client/cometbus.iife.js", "../../dist/client/cometbus.iife.js"]) {
    try {
      return readFileSync(new URL(path, import.meta.url), "utf8");
    } catch {
      // try the next place
    }
  }
  return null;
}

/** Every route of the bus, relative to where it is mounted (`base`). */
export function createRoutes(bus: MessageBus): Hono {
  const app = new Hono();
  const { limits } = bus;
  // The rest of the body is never read, so the connection cannot be reused: say so, or a client's
  // next request on this keep-alive socket fails with "other side closed".
  const tooLarge = (max: number) => (c: Context) =>
    c.json({ error: `request body too large: at most ${max} bytes` }, 413, { Connection: "close" });
  const limit = cheapBodyLimit(limits.maxBodyBytes, tooLarge(limits.maxBodyBytes));
  const publishMax = Math.max(limits.maxBodyBytes, limits.maxMessageBytes + 16 * 1024);
  const publishLimit = cheapBodyLimit(publishMax, tooLarge(publishMax));

  app.onError((err, c) => {
    if (err instanceof ProtocolError) return c.json({ error: err.message }, err.status);
    if (err instanceof HTTPException) return c.json({ error: err.message }, err.status);
    // The shared store is down: the publish was not taken, the caller may retry.
    if (err instanceof BackendUnavailableError) return c.json({ error: err.message }, 503);
    // The client left while its body was read: nobody to answer, nothing went wrong.
    if (clientLeft(c)) return RESPONSE_ALREADY_SENT;
    bus.logError(err);
    return c.json({ error: "internal error" }, 500);
  });

  app.use(async (c, next) => {
    // A connection with many requests queued behind an open stream (pipelining) is closed.
    if (!admitRequest(c, limits.maxQueuedRequests)) return RESPONSE_ALREADY_SENT;
    // Hono answers HEAD with the GET route minus its body, but a poll or a stream writes its own.
    if (c.req.method === "HEAD" && /\/(poll|sse|ws)$/.test(c.req.path)) {
      return c.json({ error: "this URL takes GET or POST" }, 405, { Allow: "GET, POST" });
    }
    await next();
    discardUnreadBody(c);
    // JSON and text bodies are never to be sniffed as HTML; errors are never to be cached. (A response
    // already written on Node carries its own headers; the marker it returns is shared, never touched.)
    if (c.res === RESPONSE_ALREADY_SENT) return;
    const headers = c.res.headers;
    headers.set("X-Content-Type-Options", "nosniff");
    if (c.res.status >= 400 && !headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
  });

  // message_bus answers preflights with 200; cross-origin use is configured by the app's own CORS middleware.
  app.options("*", (c) => c.text("OK", 200, NO_CACHE));

  app.on(["GET", "POST"], "/:clientId/poll", limit, async (c) => {
    const { sub, who } = await readSubscribe(bus, c);
    return handlePoll(bus, c, sub, who);
  });

  app.on(["GET", "POST"], "/:clientId/sse", limit, async (c) => {
    const { sub, who } = await readSubscribe(bus, c);
    return handleSse(bus, c, sub, who);
  });

  app.get("/:clientId/ws", async (c) => {
    checkClientId(c.req.param("clientId"));
    return acceptUpgrade(bus, c);
  });

  app.get("/stats", (c) => c.json(bus.stats(), 200, NO_CACHE));

  app.post("/publish", publishLimit, async (c) => {
    const token = bus.options.publishToken;
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
    const r = await bus.publish(body.channel as string, body.data, {
      userIds: body.user_ids as never,
      groupIds: body.group_ids as never,
      clientIds: body.client_ids as never,
    });
    return c.json({ global_id: r.globalId, message_id: r.messageId });
  });

  let bundle: string | null | undefined;
  app.get("/client.js", (c) => {
    bundle ??= clientBundle();
    if (!bundle) return c.json({ error: "the browser bundle is not built: run npm run build" }, 404);
    return c.body(bundle, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=300" });
  });

  app.all("*", (c) => c.json({ error: "not found" }, 404));
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
