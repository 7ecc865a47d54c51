// The bus inside Express 5, Fastify 5 and Koa 3, mounted exactly as the README's examples do it
// ("Express, Fastify, Koa"): the framework's own session middleware in front, `userIdLookup` reading
// what it set, WebSocket upgrades through the framework's own server.
import { type IncomingMessage, type Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import express from "express";
import expressSession from "express-session";
import Fastify from "fastify";
import type { Context } from "hono";
import Koa from "koa";
import koaSession from "koa-session";
import { afterEach, describe, expect, it } from "vitest";
import { MessageBus } from "../server/index.js";
import { follow, TRANSPORTS } from "./fixtures/follow.js";

const SECRET = "a secret of at least thirty-two characters, for the tests";

interface Mounted {
  url: string;
  close(): Promise<void>;
}

interface Framework {
  name: string;
  /** The README's lookup for this framework. */
  userIdLookup(c: Context): string | undefined;
  /** The app: session middleware, `GET /login?user=…` (sets the session), `GET /hello`, and the bus. */
  start(bus: MessageBus): Promise<Mounted>;
}

function closing(server: Server): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}

function urlOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function listening(server: Server): Promise<void> {
  return new Promise((resolve) => (server.listening ? resolve() : server.once("listening", () => resolve())));
}

const FRAMEWORKS: Framework[] = [
  {
    name: "Express 5",
    userIdLookup: (c) => (c.env.incoming as IncomingMessage & { session?: { userId?: string } }).session?.userId,
    async start(bus) {
      const app = express();
      const session = expressSession({ secret: SECRET, resave: false, saveUninitialized: false });
      app.use(session);
      app.get("/login", (req, res) => {
        (req.session as unknown as { userId: string }).userId = String(req.query.user);
        res.send("ok");
      });
      app.get("/hello", (_req, res) => void res.send("hello from express"));
      // Before any body parser (express.json() would read the bodies the bus reads).
      app.use(bus.nodeHandler());
      const server = app.listen(0, "127.0.0.1");
      // An upgrade skips Express: run the session middleware on it, as Express would have.
      bus.attach(server, {
        context: (req) => new Promise((resolve, reject) => session(req as express.Request, new ServerResponse(req) as express.Response, (e?: unknown) => (e ? reject(e) : resolve(undefined)))),
      });
      await listening(server);
      return { url: urlOf(server), close: closing(server) };
    },
  },
  {
    name: "Fastify 5",
    userIdLookup: (c) => (c.env.context as { session?: { get?(k: string): string | undefined } } | undefined)?.session?.get?.("userId"),
    async start(bus) {
      const fastify = Fastify({ forceCloseConnections: true });
      await fastify.register(fastifyCookie);
      await fastify.register(fastifySession, { secret: SECRET, cookie: { secure: false }, saveUninitialized: false });
      fastify.get("/login", async (request) => {
        request.session.set("userId" as never, String((request.query as { user: string }).user) as never);
        return "ok";
      });
      fastify.get("/hello", async () => "hello from fastify");
      await fastify.register(async (scope) => {
        // The bus reads its own bodies: in this scope Fastify parses none.
        scope.removeAllContentTypeParsers();
        scope.addContentTypeParser("*", (_req, _body, done) => done(null));
        scope.all(`${bus.options.base}/*`, (request, reply) => {
          reply.hijack();
          bus.serveNode(request.raw, reply.raw, request);
        });
      });
      // An upgrade skips Fastify's hooks: read the session as @fastify/session does.
      bus.attach(fastify.server, {
        context: (req) =>
          new Promise((resolve, reject) => {
            const request: Record<string, unknown> = {};
            const id = fastify.parseCookie(req.headers.cookie ?? "").sessionId;
            if (!id) return resolve(request);
            fastify.decryptSession(id, request, (e) => (e ? reject(e) : resolve(request)));
          }),
      });
      await fastify.listen({ port: 0, host: "127.0.0.1" });
      return { url: urlOf(fastify.server), close: () => fastify.close() };
    },
  },
  {
    name: "Koa 3",
    userIdLookup: (c) => (c.env.context as Koa.Context | undefined)?.session?.userId as string | undefined,
    async start(bus) {
      const app = new Koa();
      app.keys = [SECRET];
      app.use(koaSession({ signed: true }, app));
      app.use(async (ctx, next) => {
        if (!bus.serveNode(ctx.req, ctx.res, ctx)) return next();
        ctx.respond = false;
      });
      app.use(async (ctx) => {
        if (ctx.path === "/login") {
          ctx.session!.userId = String(ctx.query.user);
          ctx.body = "ok";
        } else if (ctx.path === "/hello") ctx.body = "hello from koa";
      });
      const server = app.listen(0, "127.0.0.1");
      // An upgrade skips Koa: a context of its own reads the session cookie as koa-session does.
      bus.attach(server, { context: (req) => app.createContext(req, new ServerResponse(req)) });
      await listening(server);
      return { url: urlOf(server), close: closing(server) };
    },
  },
];

let stop: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stop.reverse()) await s();
  stop = [];
});

async function login(url: string, user: string): Promise<string> {
  const res = await fetch(`${url}/login?user=${user}`);
  expect(res.status).toBe(200);
  const cookies = res.headers.getSetCookie().map((c) => c.split(";")[0]);
  expect(cookies.length).toBeGreaterThan(0);
  return cookies.join("; ");
}

describe.each(FRAMEWORKS)("$name", (fw) => {
  it("serves every transport behind the app's session; a targeted message reaches its user only; WebSockets upgrade on the app's server", async () => {
    const bus = new MessageBus({ userIdLookup: (c) => fw.userIdLookup(c), onError: (e) => console.error(e) });
    const app = await fw.start(bus);
    // The bus first: it answers held polls, ends streams and closes sockets, so the app's server can close.
    stop.push(() => app.close(), () => bus.close());
    const base = `${app.url}${bus.options.base}`;

    expect(await (await fetch(`${app.url}/hello`)).text()).toMatch(/^hello from/);
    const cookies = { alice: await login(app.url, "alice"), bob: await login(app.url, "bob") };

    await bus.publish("/inbox", "for alice", { userIds: ["alice"] });
    await bus.publish("/inbox", "for bob", { userIds: ["bob"] });
    await bus.publish("/inbox", "for all");
    const gotAll = (f: { messages: { data: unknown }[] }) => f.messages.some((m) => m.data === "for all");

    for (const transport of TRANSPORTS) {
      for (const user of ["alice", "bob"] as const) {
        const f = await follow(transport, base, `${user}-${transport}`, { "/inbox": 0 }, gotAll, { headers: { cookie: cookies[user] } });
        expect(f.messages.map((m) => m.data), `${transport} as ${user}`).toEqual([`for ${user}`, "for all"]);
      }
      const anonymous = await follow(transport, base, `nobody-${transport}`, { "/inbox": 0 }, gotAll);
      expect(anonymous.messages.map((m) => m.data), `${transport} without a session`).toEqual(["for all"]);
    }

    // A message published while each user's WebSocket is held live, not read from the backlog.
    const live = ["alice", "bob"].map((user) => {
      let subscribed!: () => void;
      const ready = new Promise<void>((r) => (subscribed = r));
      const f = follow("websocket", base, `${user}-live`, { "/live": -1 }, (x) => x.messages.some((m) => m.data === "end"), {
        headers: { cookie: cookies[user as "alice" | "bob"] },
        onSubscribed: subscribed,
      });
      return { f, ready };
    });
    // The welcome's status answers -1 once subscribed; a first public message proves the socket live.
    await bus.publish("/live", "warm-up");
    await Promise.all(live.map((l) => l.ready));
    await bus.publish("/live", "bob only", { userIds: ["bob"] });
    await bus.publish("/live", "end");
    const [alice, bob] = await Promise.all(live.map((l) => l.f));
    expect(alice.messages.map((m) => m.data).filter((d) => d !== "warm-up")).toEqual(["end"]);
    expect(bob.messages.map((m) => m.data).filter((d) => d !== "warm-up")).toEqual(["bob only", "end"]);
  });
});
