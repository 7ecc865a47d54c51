import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import type { RouteRuntime } from "../http/route-deps.js";
import { admitRequest, clientLeft, discardUnreadBody } from "./connection.js";
import { exchangeFor, nodeEnv } from "./exchange.js";
import type { FastPaths } from "./fast-paths.js";
import { acceptUpgrade, upgradeExpected } from "./upgrade.js";

function upgradeRequest(c: Context): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/**
 * The routes' runtime on node:http (through @hono/node-server or `bus.listen`/`attach`). A request
 * that carries no Node objects (`app.request` in tests, another adapter) gets the web-standard way.
 */
export function nodeRuntime(fast: FastPaths): RouteRuntime {
  return {
    exchange: (c) => exchangeFor(c, fast),
    admit: (c, max) => {
      const env = nodeEnv(c);
      return env ? admitRequest(env.incoming, env.outgoing, max) : true;
    },
    discardUnreadBody: (c) => {
      const env = nodeEnv(c);
      if (env) discardUnreadBody(env.incoming, env.outgoing);
    },
    clientLeft: (c) => {
      const env = nodeEnv(c);
      return env ? clientLeft(env.incoming) : c.req.raw.signal.aborted;
    },
    canUpgrade: (c) => {
      const req = upgradeRequest(c);
      return !!req && upgradeExpected(req);
    },
    upgrade: (c, open) => {
      acceptUpgrade(upgradeRequest(c)!, open);
      return c.body(null, 204);
    },
  };
}
