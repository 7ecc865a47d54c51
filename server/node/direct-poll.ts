import type { IncomingMessage, ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { CLIENT_ID_RE } from "../../src/channel.js";
import { clientError, countFallback, ERROR_HEADERS, type ErrorAnswer, refusal, tooLarge } from "../http/route-answers.js";
import type { RouteBus } from "../http/route-deps.js";
import { parseSubscribe } from "../http/subscribe-request.js";
import type { Identity } from "../core/targeting.js";
import { handlePoll } from "../transports/poll.js";
import { admitRequest, clientLeft, discardUnreadBody } from "./connection.js";
import { JSON_HEADERS, NodeExchange } from "./exchange.js";
import type { FastPaths } from "./fast-paths.js";
import type { NodeLink } from "./attach.js";

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** A lower-case name or IPv4 address, with a port of four or five digits up to 59999 or none. */
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-9]\d{3}|[1-5]\d{4}))?$/;

/** The bus's own node:http listener: polls straight (see directPoll), the rest through `routes`. */
export function withDirectPolls(link: NodeLink, routes: Listener): Listener {
  const direct = directPoll(link.base, link.routeBus(), link.fast);
  return (req, res) => {
    if (!direct(req, res)) routes(req, res);
  };
}

/**
 * `GET|POST {base}/{clientId}/poll` (docs/protocol.md#61-poll, #62-long-poll, #63-chunked-long-poll) answered straight from
 * node:http. Through @hono/node-server and Hono, a poll paid for a web Request, the router, the
 * middleware chain and a web Response: twice a hello-world route's cost, where its own work is a
 * map lookup and a short JSON write. This path is taken only where nothing but the bus could read
 * the request: its own listener (`listen()` or `nodeHandler()`/`serveNode()` without an app, the
 * CLI), and no lookup or `authorize` hook (they are given a Hono Context). It answers exactly as the
 * routes do (server/http/route-answers.ts holds what both say); anything it does not recognise as
 * plainly a poll (another method, an encoded or odd path, an odd Host, a chunked body) goes to Hono as before.
 */
export function directPoll(base: string, bus: RouteBus, fast: FastPaths): (req: IncomingMessage, res: ServerResponse) => boolean {
  const prefix = base + "/";
  return (req, res) => {
    const method = req.method;
    if ((method !== "POST" && method !== "GET") || !fast.directPolls || bus.readsRequests()) return false;
    const url = req.url;
    if (!url?.startsWith(prefix)) return false;
    const q = url.indexOf("?");
    const end = q < 0 ? url.length : q;
    if (!url.endsWith("/poll", end)) return false;
    const clientId = url.slice(prefix.length, end - 5);
    if (!CLIENT_ID_RE.test(clientId) || req.headers["transfer-encoding"] !== undefined) return false;
    // @hono/node-server refuses a request without a Host it can make a URL of (400). A host it takes
    // without parsing a URL is taken here; any other (none, upper case, IPv6, an odd port) goes to it.
    const host = req.headers.host;
    if (host === undefined || !PLAIN_HOST.test(host)) return false;
    // Nothing may escape (a throwing onError included): the connection goes, the process stays.
    servePoll(bus, new DirectExchange({ incoming: req, outgoing: res }, fast, bus), clientId, method === "GET").catch(() => res.destroy());
    return true;
  };
}

/** In the order the routes' middleware, body limit and poll route take them. */
async function servePoll(bus: RouteBus, x: DirectExchange, clientId: string, get: boolean): Promise<void> {
  const { incoming: req, outgoing: res } = x.node;
  const limits = bus.transports.limits;
  try {
    countFallback(bus, x.search);
    if (!admitRequest(req, res, limits.maxQueuedRequests)) return;
    if (Number(req.headers["content-length"] ?? 0) > limits.maxBodyBytes) return x.error(tooLarge(limits.maxBodyBytes));
    const no = refusal(bus, !x.search.includes("dlp=t"));
    if (no) return x.error(no);
    const text = get ? "" : await readBody(req);
    if (text === null) return; // the client left while its body came: nobody to answer
    const sub = parseSubscribe(get, x, text, limits);
    const who: Identity = { clientId, userId: undefined, groupIds: undefined, siteId: undefined };
    if (sub.clients) who.alsoFor = sub.clients;
    await handlePoll(bus.transports, x, sub, who);
  } catch (err) {
    const said = clientError(bus, err);
    if (!said && clientLeft(req)) return;
    if (!said) bus.transports.report(err);
    if (res.headersSent) res.destroy();
    else x.error(said ?? { status: 500, error: "internal error" });
  } finally {
    discardUnreadBody(req, res);
  }
}

/** A body as `Request.text()` reads it (UTF-8, a leading BOM dropped, bad bytes replaced); null if the client left first. */
function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const data = (b: Buffer) => chunks.push(b);
    const settle = (text: string | null) => {
      req.off("data", data).off("end", end).off("error", left).off("close", left);
      resolve(text);
    };
    const end = () => settle(UTF8.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    const left = () => settle(null);
    req.on("data", data).on("end", end).on("error", left).on("close", left);
  });
}

const UTF8 = new TextDecoder();

/** What an error answer carries, as Hono's `c.json` and the routes' middleware set it. */
const ERROR_JSON_HEADERS: Record<string, string> = { "Content-Type": "application/json", ...ERROR_HEADERS };

/** Node's exchange, its immediate answers written at once on the response (no web Response to translate). */
class DirectExchange extends NodeExchange {
  constructor(
    env: { incoming: IncomingMessage; outgoing: ServerResponse },
    fast: FastPaths,
    private readonly bus: RouteBus,
  ) {
    super(env, fast);
  }

  get node() {
    return this.env;
  }

  override json(body: string, headers?: Record<string, string>): Response {
    this.write(200, body, JSON_HEADERS, headers);
    return RESPONSE_ALREADY_SENT;
  }

  /** An error as the routes answer it: `{ "error": … }`, never cached, never sniffed. */
  error(a: ErrorAnswer): void {
    this.write(a.status, JSON.stringify({ error: a.error }), ERROR_JSON_HEADERS, a.headers);
  }

  /** One head object per answer (a poll's hot path): the bus's headers, then the answer's own. */
  private write(status: number, body: string, base: Record<string, string>, extra?: Record<string, string>): void {
    const out = this.env.outgoing;
    if (out.destroyed || out.headersSent) return;
    const head: Record<string, string> = { ...base, ...extra, "Content-Length": String(Buffer.byteLength(body)) };
    // Draining: every answer closes its connection, so the client's next request goes through the
    // load balancer to another process (as the routes' middleware says it).
    if (this.bus.draining()) head.Connection = "close";
    out.writeHead(status, head);
    out.end(body);
  }
}
