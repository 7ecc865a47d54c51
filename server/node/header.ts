import type { IncomingMessage } from "node:http";
import type { Context } from "hono";

/**
 * A request header (lower-case name) read from Node's own parsed headers when there are some:
 * `c.req.header()` makes @hono/node-server build a web Headers object, which then stays with the
 * request for as long as a stream or held poll lives (memory per idle connection, CPU per poll).
 */
export function header(c: Context, name: string): string | undefined {
  const headers = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.headers;
  if (!headers) return c.req.header(name);
  const v = headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}
