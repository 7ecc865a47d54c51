import type { Context } from "hono";
import { checkClientId } from "../../src/channel.js";
import { ProtocolError } from "../../src/errors.js";
import { parseRequests, repliesJson } from "../../src/request.js";
import type { RouteBus } from "./route-deps.js";

/**
 * `POST {base}/{clientId}/request` (docs/protocol.md#12-requests): one request, answered with its
 * reply and the reply's status; or `{"requests":[…]}`, answered 200 with `{"replies":[…]}` once
 * every one is answered, in the order asked.
 */
export async function requestRoute(bus: RouteBus, c: Context): Promise<Response> {
  const clientId = checkClientId(c.req.param("clientId"));
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new ProtocolError("invalid JSON body");
  }
  const batch = !!body && typeof body === "object" && !Array.isArray(body) && ("requests" in body || "request" in body);
  const requests = parseRequests(body, bus.transports.limits.maxRequestsPerBatch);
  const who = await bus.identify(c, clientId);
  const replies = await new Promise<string[]>((resolve) => {
    const got = new Map<number, string>();
    bus.transports.requests.submit(who, requests, c, (id, reply) => {
      got.set(id, reply);
      if (got.size === requests.length) resolve(requests.map((r) => got.get(r.id)!));
    });
  });
  const headers = { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" };
  if (batch) return c.body(repliesJson(replies), 200, headers);
  const status = (JSON.parse(replies[0]) as { status: number }).status;
  return c.body(replies[0], status as 200, headers);
}
