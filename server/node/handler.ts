import type { IncomingMessage, ServerResponse } from "node:http";
import type { Hono } from "hono";
import type { NodeLink } from "./attach.js";
import { withDirectPolls } from "./direct-poll.js";
import { requestListener, setRequestContext } from "./request-listener.js";

/** A Connect/Express middleware, or a plain node:http listener when `next` is left out. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

/**
 * Serves the bus's requests inside another framework's server: those under `base`, untouched by
 * the framework (the bodies unread, the response not begun), the rest left to it.
 */
export class NodeServe {
  private listener?: (req: IncomingMessage, res: ServerResponse) => void;
  constructor(
    private readonly link: NodeLink,
    private readonly app?: Hono,
  ) {}

  /** Whether a request target is the bus's. */
  owns(target: string | undefined): boolean {
    const path = (target ?? "/").split("?")[0];
    return path === this.link.base || path.startsWith(this.link.base + "/");
  }

  /** Serves `req` if it is the bus's (true), with `context` for the lookups (`c.env.context`). */
  serve(req: IncomingMessage, res: ServerResponse, context?: unknown): boolean {
    if (!this.owns(req.url)) return false;
    setRequestContext(req, context);
    this.link.meter?.track(req.socket);
    (this.listener ??= this.makeListener())(req, res);
    return true;
  }

  private makeListener(): (req: IncomingMessage, res: ServerResponse) => void {
    const routes = requestListener(this.app ?? this.link.mounted(), (e) => this.link.report(e));
    // Without an app of the user's, nothing but the bus reads its requests: polls may skip Hono.
    return this.app ? routes : withDirectPolls(this.link, routes);
  }

  handler(): NodeHandler {
    return (req, res, next) => {
      if (this.serve(req, res)) return;
      if (next) return next();
      res.writeHead(404, { "Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" }).end(JSON.stringify({ error: "not found" }));
    };
  }
}
