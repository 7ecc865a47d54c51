import type { IncomingMessage, ServerResponse } from "node:http";
import { getRequestListener, RequestError } from "@hono/node-server";
import type { Hono } from "hono";
import { truncateUtf8 } from "../../src/text.js";

/**
 * What a framework's request object (Koa's ctx, Fastify's request) the app handed the bus for a
 * request, so the lookups can read what the app's middleware set on it: `c.env.context`.
 */
const contexts = new WeakMap<IncomingMessage, unknown>();

export function setRequestContext(req: IncomingMessage, context: unknown): void {
  if (context !== undefined) contexts.set(req, context);
}

/** The node:http listener of a Hono app, its env `{ incoming, outgoing, context }`. */
export function requestListener(root: Hono, report: (e: unknown) => void): (req: IncomingMessage, res: ServerResponse) => void {
  const listener = getRequestListener(
    (request, env) => {
      const context = contexts.get(env.incoming as IncomingMessage);
      if (context !== undefined) (env as { context?: unknown }).context = context;
      return root.fetch(request, env);
    },
    {
      // A request target the adapter cannot make a URL of (`GET *`, a bad Host) is bad input: JSON, as every other.
      errorHandler: (e) => {
        if (!(e instanceof RequestError)) report(e);
        return Response.json(
          { error: e instanceof RequestError ? `bad request: ${truncateUtf8(e.message, 200)}` : "internal error" },
          { status: e instanceof RequestError ? 400 : 500, headers: { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" } },
        );
      },
    },
  );
  return listener as (req: IncomingMessage, res: ServerResponse) => void;
}
