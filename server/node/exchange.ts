import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context } from "hono";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { WebExchange } from "../http/web-exchange.js";
import { busJson, JSON_TYPE, NO_CACHE } from "../transports/common.js";
import type { Exchange, LaterAnswer, Sink, SinkOwner } from "../transports/io.js";
import { onClientGone, ownTurn } from "./connection.js";
import type { FastPaths } from "./fast-paths.js";
import { flattenHead, NodeSink } from "./sink.js";

export const JSON_HEADERS = { ...NO_CACHE, "Content-Type": JSON_TYPE };

/** The request and response @hono/node-server hands the app, when it is the one serving it. */
export interface NodeEnv {
  incoming: IncomingMessage;
  outgoing: ServerResponse;
}

export function nodeEnv(c: Context): NodeEnv | undefined {
  const env = c.env as Partial<NodeEnv> | undefined;
  return env?.incoming && env.outgoing && typeof env.outgoing.writeHead === "function" ? (env as NodeEnv) : undefined;
}

/**
 * A request served by node:http, answered on its own ServerResponse where that is cheaper: headers
 * read from Node's parsed ones (`c.req.header()` would build a web Headers object that then lives
 * as long as the stream or held poll), streams and held polls written straight to the response (no
 * web-stream machinery, and the handler's context, request and promise chain let go at once).
 */
export class NodeExchange implements Exchange {
  constructor(
    protected readonly env: NodeEnv,
    private readonly fast: FastPaths,
  ) {}

  header(name: string): string | undefined {
    const v = this.env.incoming.headers[name];
    return Array.isArray(v) ? v.join(", ") : v;
  }

  get search(): string {
    const url = this.env.incoming.url ?? "";
    const q = url.indexOf("?");
    return q < 0 ? "" : url.slice(q);
  }

  get http11(): boolean {
    return this.env.incoming.httpVersion === "1.1";
  }

  turn(): boolean | Promise<boolean> {
    return ownTurn(this.env.incoming, this.env.outgoing);
  }

  onGone(fn: () => void): boolean {
    return onClientGone(this.env.incoming, this.env.outgoing, fn);
  }

  json(body: string, headers?: Record<string, string>): Response {
    return busJson(body, headers ? { ...JSON_HEADERS, ...headers } : JSON_HEADERS);
  }

  later(headers?: () => Record<string, string>): LaterAnswer {
    return new NodeLaterAnswer(this.env.outgoing, headers);
  }

  stream(headers: Record<string, string>, owner: SinkOwner): { sink: Sink; response: Response } {
    const out = this.env.outgoing;
    const sink = new NodeSink(out, owner, this.fast);
    out.writeHead(200, headers);
    if (this.fast.flatHead) flattenHead(out);
    // The client may have left while the backlog was read: then it is gone already.
    // Bound, not an arrow field of the sink: 48 bytes, where a closure and its context took twice that.
    const gone = sink.gone.bind(sink);
    if (!onClientGone(this.env.incoming, out, gone)) queueMicrotask(gone);
    return { sink, response: RESPONSE_ALREADY_SENT };
  }

  gone(): Response {
    return RESPONSE_ALREADY_SENT;
  }
}

/**
 * A held poll's answer on Node: it keeps just the ServerResponse (and where its headers come from),
 * and the answer is one direct write. An object, not a closure: a closure made in `later` would
 * keep the exchange, and through it the request, for the whole hold.
 */
class NodeLaterAnswer implements LaterAnswer {
  readonly response = RESPONSE_ALREADY_SENT;

  constructor(
    private readonly out: ServerResponse,
    private readonly headers?: () => Record<string, string>,
  ) {}

  answer(body: string, close?: boolean): void {
    const out = this.out;
    if (out.destroyed) return;
    out.writeHead(200, { ...JSON_HEADERS, ...this.headers?.(), "Content-Length": Buffer.byteLength(body), ...(close ? { Connection: "close" } : {}) });
    out.end(body);
  }
}

/** The exchange for a request: Node's where @hono/node-server serves it, the web-standard one elsewhere. */
export function exchangeFor(c: Context, fast: FastPaths): Exchange {
  const env = nodeEnv(c);
  return env ? new NodeExchange(env, fast) : new WebExchange(c);
}
