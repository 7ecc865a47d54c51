import type { Context } from "hono";
import { checkClientId } from "../../src/channel.js";
import { ProtocolError } from "../../src/errors.js";
import type { Limits } from "../../src/limits.js";
import { parseSubscription, type Subscription } from "../../src/subscription.js";
import type { Identity } from "../core/targeting.js";
import type { Exchange } from "../transports/io.js";
import type { RouteBus } from "./route-deps.js";

/**
 * A subscribing request, read the same way for every HTTP transport: the client id from the path,
 * `channel=lastId` pairs from a JSON or form body (POST) or the query (GET), then the lookups and
 * `authorize` for every channel.
 */
export async function readSubscribe(bus: RouteBus, c: Context, x: Exchange): Promise<{ sub: Subscription; who: Identity }> {
  const clientId = checkClientId(c.req.param("clientId"));
  const get = c.req.method === "GET";
  const sub = parseSubscribe(get, x, get ? "" : await c.req.text(), bus.transports.limits);
  const who = await bus.identify(c, clientId);
  if (sub.clients) who.alsoFor = sub.clients;
  await bus.authorizeAll(c, sub.positions.keys());
  return { sub, who };
}

/** The subscription a GET's query or a POST's body (`text`, JSON or form) asks for. */
export function parseSubscribe(get: boolean, x: Exchange, text: string, limits: Limits): Subscription {
  if (get) return parseSubscription(new URLSearchParams(x.search), { lenient: true, limits });
  if (!(x.header("content-type") ?? "").includes("application/json")) return parseSubscription(new URLSearchParams(text), { limits });
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    throw new ProtocolError("invalid JSON body");
  }
  return parseSubscription(body, { limits });
}
