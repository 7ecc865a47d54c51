import { fileURLToPath } from "node:url";
import path from "node:path";
import { serveStatic } from "@hono/node-server/serve-static";
import { Hono } from "hono";
import type { MessageBus } from "./bus.js";
import { ProtocolError } from "../src/errors.js";

const demosDir = fileURLToPath(new URL("../../demos/", import.meta.url));

/**
 * The demo server of `npm start`: the bus at its base, the pages of `demos/` at `/`, and a
 * publish route open to the pages (demo only: never mount it in an app of your own).
 */
export function demoApp(bus: MessageBus): Hono {
  const app = new Hono();
  app.route(bus.options.base, bus.routes());
  app.post("/demo/publish", async (c) => {
    let body: { channel?: unknown; data?: unknown; user_ids?: unknown };
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "invalid JSON body" }, 400);
    }
    try {
      const r = await bus.publish(String(body.channel), body.data, { userIds: body.user_ids as never });
      return c.json({ global_id: r.globalId, message_id: r.messageId });
    } catch (e) {
      if (e instanceof ProtocolError) return c.json({ error: e.message }, e.status);
      throw e;
    }
  });
  app.post("/demo/reset", async (c) => {
    await bus.reset();
    return c.json({ epoch: bus.backend.epoch });
  });
  app.use("/*", serveStatic({ root: path.relative(process.cwd(), demosDir) || "." }));
  return app;
}
