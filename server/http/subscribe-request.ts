import type { Context } from "hono";
import { checkClientId } from "../../src/channel.js";
import { ProtocolError } from "../../src/errors.js";
import { parseSubscription, type Subscription } from "../../src/subscription.js";
import type { MessageBus } from "../bus.js";
import { header } from "../node/header.js";
import type { Identity } from "../core/targeting.js";

/**
 * A subscribing request, read the same way for every HTTP transport: the client id from the path,
 * `channel=lastId` pairs from a JSON or form body (POST) or the query (GET), then the lookups and
 * `authorize` for every channel.
 */
export async function readSubscribe(bus: MessageBus, c: Context): Promise<{ sub: Subscription; who: Identity }> {
  const clientId = checkClientId(c.req.param("clientId"));
  const limits = bus.limits;
  let sub: Subscription;
  if (c.req.method === "GET") {
    sub = parseSubscription(new URL(c.req.url).searchParams, { lenient: true, limits });
  } else {
    const text = await c.req.text();
    if ((header(c, "content-type") ?? "").includes("application/json")) {
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        throw new ProtocolError("invalid JSON body");
      }
      sub = parseSubscription(body, { limits });
    } else {
      sub = parseSubscription(new URLSearchParams(text), { limits });
    }
  }
  const who = await bus.identify(c, clientId);
  await bus.authorizeAll(c, sub.positions.keys());
  return { sub, who };
}
