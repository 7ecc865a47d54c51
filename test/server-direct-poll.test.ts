import { createServer, type Server } from "node:http";
import net from "node:net";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryBackend, MessageBus, type MessageBusOptions, type Snapshot } from "../server/index.js";
import { startServer } from "./helpers/server.js";
import type { RouteBus } from "../server/http/route-deps.js";
import { directPoll } from "../server/node/direct-poll.js";
import { probeFastPaths } from "../server/node/fast-paths.js";

/**
 * Which requests Node's direct poll path takes (server/node/direct-poll.ts) and which it leaves to
 * Hono. What it answers is fuzzed against the routes' own answers in test/fuzz-http.test.ts.
 */

/** A node:http server that offers every request to `directPoll` and counts what it took. */
async function probe(options: MessageBusOptions) {
  const bus = new MessageBus({ base: "/mb", ...options, onError: () => {} });
  await bus.ready();
  const routeBus = (bus as unknown as { routeBus(): RouteBus }).routeBus();
  const fast = options.fastPaths === false ? { ...probeFastPaths(), directPolls: false } : probeFastPaths();
  const direct = directPoll(bus.options.base, routeBus, fast);
  let taken = 0;
  const server: Server = createServer((req, res) => {
    if (direct(req, res)) taken++;
    else res.writeHead(418, { "Content-Length": "0" }).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  /** Sends one raw request; resolves whether the direct path took it and the status answered. */
  const send = (head: string, body = "") =>
    new Promise<{ taken: boolean; status: number }>((resolve, reject) => {
      const before = taken;
      const socket = net.connect(port, "127.0.0.1");
      let got = "";
      socket.on("data", (d) => {
        got += d.toString("latin1");
        const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
        if (m && got.includes("\r\n\r\n")) {
          socket.destroy();
          resolve({ taken: taken > before, status: Number(m[1]) });
        }
      });
      socket.on("error", reject);
      // A head that says its own Host (or is HTTP/1.0, which needs none) is sent as it is.
      const host = /\r\nHost:/i.test(head) || head.endsWith("HTTP/1.0") ? "" : "\r\nHost: 127.0.0.1";
      socket.write(`${head}${host}\r\n${body ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` : ""}\r\n${body}`);
    });
  return {
    send,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await bus.close();
    },
  };
}

describe("the direct poll path", () => {
  let plain: Awaited<ReturnType<typeof probe>>;
  beforeAll(async () => {
    plain = await probe({ longPollTimeout: 20 });
  });
  afterAll(() => plain?.close());

  it.each([
    ["POST /mb/abc/poll?dlp=t HTTP/1.1", '{"/a":0}'],
    ["POST /mb/abc/poll HTTP/1.1", '{"/a":-1}'],
    ["POST /mb/a_B-9/poll?dlp=t&__fallback=x HTTP/1.1", '{"/a":0}'],
    ["GET /mb/abc/poll?dlp=t&/a=0 HTTP/1.1", ""],
  ])("takes %s and answers it", async (head, body) => {
    expect(await plain.send(head, body)).toEqual({ taken: true, status: 200 });
  });

  it("answers a bad subscription with the routes' 400, and a body over the limit with 413", async () => {
    expect(await plain.send("POST /mb/abc/poll?dlp=t HTTP/1.1", "{not json")).toEqual({ taken: true, status: 400 });
    const big = `{"/a":"${"x".repeat(70_000)}"}`;
    expect(await plain.send("POST /mb/abc/poll?dlp=t HTTP/1.1", big)).toEqual({ taken: true, status: 413 });
  });

  it.each([
    "HEAD /mb/abc/poll HTTP/1.1",
    "PUT /mb/abc/poll HTTP/1.1",
    "OPTIONS /mb/abc/poll HTTP/1.1",
    "POST /mb/a%62c/poll HTTP/1.1",
    "POST /mb/abc/poll/ HTTP/1.1",
    "POST /mb//poll HTTP/1.1",
    "POST /mb/abc/def/poll HTTP/1.1",
    "POST /mbx/abc/poll HTTP/1.1",
    "POST /mb/abc/sse HTTP/1.1",
    "POST /mb/abc/pollx HTTP/1.1",
    "POST http://127.0.0.1/mb/abc/poll HTTP/1.1",
    `POST /mb/${"a".repeat(65)}/poll HTTP/1.1`,
    "POST /mb/abc/poll HTTP/1.1\r\nTransfer-Encoding: chunked",
    // Hosts @hono/node-server must parse a URL for (or refuses: no Host, a port past 65535).
    "POST /mb/abc/poll HTTP/1.0",
    "POST /mb/abc/poll HTTP/1.1\r\nHost: a:99999",
    "POST /mb/abc/poll HTTP/1.1\r\nHost: u@h",
    "POST /mb/abc/poll HTTP/1.1\r\nHost: EXAMPLE.com",
    "POST /mb/abc/poll HTTP/1.1\r\nHost: [::1]:3000",
  ])("leaves %s to Hono", async (head) => {
    expect((await plain.send(head)).taken).toBe(false);
  });

  it.each<[string, MessageBusOptions]>([
    ["userIdLookup", { userIdLookup: () => 1 }],
    ["groupIdsLookup", { groupIdsLookup: () => [1] }],
    ["siteIdLookup", { siteIdLookup: () => "s" }],
    ["authorize", { authorize: () => true }],
    ["fastPaths: false", { fastPaths: false }],
  ])("takes nothing with %s (the lookups are given Hono's Context)", async (_name, options) => {
    const p = await probe(options);
    try {
      expect(await p.send("POST /mb/abc/poll?dlp=t HTTP/1.1", '{"/a":0}')).toEqual({ taken: false, status: 418 });
    } finally {
      await p.close();
    }
  });
});

describe("errors after the body was read", () => {
  /** A store whose reads fail with an error that is nobody's fault but its own. */
  class BrokenBackend extends MemoryBackend {
    override async snapshot(): Promise<Snapshot> {
      throw new Error("the store broke (test)");
    }
  }

  it.each<[string, MessageBusOptions]>([
    ["direct", {}],
    ["through Hono (a lookup is set)", { userIdLookup: () => 1 }],
  ])("%s: a POST poll is answered 500 and the error reported (Node destroys a request once its body is read: that is not the client leaving)", async (_name, options) => {
    const errors: unknown[] = [];
    const server = await startServer({ ...options, backend: new BrokenBackend(), onError: (e) => errors.push(e) });
    try {
      const res = await fetch(`${server.base}/abc/poll?dlp=t`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"/a":0}', signal: AbortSignal.timeout(5000) });
      expect({ status: res.status, body: await res.json() }).toEqual({ status: 500, body: { error: "internal error" } });
      expect(errors.map((e) => (e as Error).message)).toEqual(["the store broke (test)"]);
    } finally {
      await server.close();
    }
  });

  it("an onError that throws costs the connection, not the process", async () => {
    const server = await startServer({
      backend: new BrokenBackend(),
      onError: () => {
        throw new Error("onError itself broke (test)");
      },
    });
    try {
      const answered = await fetch(`${server.base}/abc/poll?dlp=t&/a=0`, { signal: AbortSignal.timeout(5000) }).then(
        (r) => r.status,
        () => "connection closed",
      );
      expect(answered).toBe("connection closed");
      // Still serving.
      expect((await fetch(`${server.base}/stats`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe("where the bus serves polls directly", () => {
  /** A poll on `port`: its status. */
  async function poll(port: number): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${port}/mb/abc/poll?dlp=t`, { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"/a":0}' });
    await res.text();
    return res.status;
  }

  it("never past an app given to listen(): its middleware sees every poll", async () => {
    const bus = new MessageBus({ base: "/mb", onError: () => {} });
    let seen = 0;
    const app = new Hono();
    app.use(async (_c, next) => {
      seen++;
      await next();
    });
    app.route("/mb", bus.routes());
    const withApp = await bus.listen(0, "127.0.0.1", app);
    const own = await bus.listen(0, "127.0.0.1");
    try {
      expect(await poll(withApp.port)).toBe(200);
      expect(seen).toBe(1);
      expect(await poll(own.port)).toBe(200);
      expect(seen).toBe(1);
    } finally {
      await own.close();
      await withApp.close();
    }
  });
});
