import { request } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parse, poll, sse, WsClient, wsUrl } from "./fixtures/clients.js";
import { startServer, type TestServer } from "./helpers/server.js";

let server: TestServer;
/** A WebSocket that stays subscribed through every bad request: it must keep being served. */
let bystander: WsClient;
let published = 0;

beforeAll(async () => {
  server = await startServer({
    publishToken: "sekret",
    authorize: (_c, channel) => !channel.startsWith("/forbidden"),
  });
  bystander = new WsClient(wsUrl(server.base, "bystander"));
  await bystander.opened;
  bystander.send({ subscribe: { "/alive": 0 } });
  await bystander.until(() => bystander.frames.length >= 2);
});
afterAll(async () => {
  bystander?.close();
  await server?.close();
});

/** After every bad input: others are still served, by HTTP and over the open WebSocket. */
afterEach(async () => {
  const n = ++published;
  await server.bus.publish("/alive", n);
  const a = await poll(server.base, "healthy", { "/alive": n - 1 });
  expect(a.status).toBe(200);
  expect(parse(a.text)).toEqual([expect.objectContaining({ channel: "/alive", message_id: n, data: n })]);
  await bystander.until(() => bystander.messages().some((m) => m.channel === "/alive" && m.data === n), `bystander ${n}`);
});

type Answer = Response | { status: number; text: string; headers?: Headers };

/** The documented error: this status, a JSON body that is exactly `{error}`, saying what was wrong. */
async function expectError(res: Answer, status: number, error: RegExp) {
  const text = typeof res.text === "function" ? await (res as Response).text() : (res.text as string);
  const type = res.headers?.get("content-type");
  expect({ status: res.status, text }).toEqual({ status, text: expect.any(String) });
  if (type !== undefined) expect(type).toMatch(/^application\/json/);
  const body = JSON.parse(text) as { error: unknown };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error).toMatch(error);
}

const form = (base: string, clientId: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${base}/${clientId}/poll?dlp=t`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", ...headers },
    body,
  });

const jsonPost = (base: string, clientId: string, body: string) =>
  fetch(`${base}/${clientId}/poll?dlp=t`, { method: "POST", headers: { "Content-Type": "application/json" }, body });

describe("HTTP subscriptions", () => {
  it("bad channel names → 400", async () => {
    await expectError(await form(server.base, "c", "nochannel=1"), 400, /bad channel "nochannel"/);
    // message_bus accepts any text: spaces and letters of any script are fine; control characters are not.
    for (const ok of ["/a b", "/é", "/café bar", "/日本語/チャット", "/emoji😀", "/a&b=c?d#e%f"]) {
      expect({ ok, status: (await form(server.base, "c", encodeURIComponent(ok) + "=0")).status }).toEqual({ ok, status: 200 });
    }
    for (const bad of ["/a\u0001", "/tab\t", "/nl\n", "/del\u007f", "/c1\u0085"]) {
      await expectError(await form(server.base, "c", encodeURIComponent(bad) + "=1"), 400, /bad channel .*without control characters/);
    }
    await expectError(await jsonPost(server.base, "c", '{"/lone\\ud800": 0}'), 400, /bad channel/);
    // The limit counts bytes of UTF-8: 256 fine, 257 not, whatever the script.
    await expectError(await form(server.base, "c", "/" + "x".repeat(256) + "=1"), 400, /bad channel.*1-256 bytes/);
    await expectError(await form(server.base, "c", encodeURIComponent("/" + "é".repeat(128)) + "=1"), 400, /bad channel/);
    expect((await form(server.base, "c", "/" + "x".repeat(255) + "=0")).status).toBe(200);
    expect((await form(server.base, "c", encodeURIComponent("/" + "é".repeat(127) + "x") + "=0")).status).toBe(200);
  });

  it("non-numeric ids → 400", async () => {
    await expectError(await form(server.base, "c", "/p=abc"), 400, /bad id for channel "\/p"/);
    await expectError(await form(server.base, "c", "/p=1.5"), 400, /bad id/);
    await expectError(await form(server.base, "c", "/p=1e3"), 400, /bad id/);
    await expectError(await jsonPost(server.base, "c", '{"/p":{"x":1}}'), 400, /bad id/);
    await expectError(await jsonPost(server.base, "c", '{"/p":true}'), 400, /bad id/);
    await expectError(await form(server.base, "c", "/p=0&__seq=x"), 400, /__seq/);
  });

  it("broken or wrongly shaped JSON bodies → 400", async () => {
    await expectError(await jsonPost(server.base, "c", '{"/p":'), 400, /invalid JSON/);
    await expectError(await jsonPost(server.base, "c", "[1,2]"), 400, /subscription is an object/);
    await expectError(await jsonPost(server.base, "c", '"x"'), 400, /subscription is an object/);
  });

  it("101 channels → 400 (100 are fine), on poll and SSE", async () => {
    const pairs = (n: number) => Array.from({ length: n }, (_, i) => `/c${i}=0`).join("&");
    expect((await form(server.base, "c", pairs(100))).status).toBe(200);
    await expectError(await form(server.base, "c", pairs(101)), 400, /too many channels: at most 100/);
    await expectError(await fetch(`${server.base}/c/sse?${pairs(101)}`), 400, /too many channels/);
  });

  it("a body over 64 KiB → 413, with or without Content-Length", async () => {
    const big = "/p=0&" + "x=" + "y".repeat(64 * 1024);
    await expectError(await form(server.base, "c", big), 413, /too large: at most 65536/);
    const chunked = new ReadableStream({
      start(ctl) {
        for (let i = 0; i < 20; i++) ctl.enqueue(new TextEncoder().encode("z".repeat(4096)));
        ctl.close();
      },
    });
    const res = await fetch(`${server.base}/c/poll?dlp=t`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: chunked,
      duplex: "half",
    } as RequestInit);
    await expectError(res, 413, /too large/);
  });

  it("bad client ids → 400 on every transport", async () => {
    await expectError(await form(server.base, "bad!id", "/p=0"), 400, /bad client id/);
    await expectError(await form(server.base, "x".repeat(65), "/p=0"), 400, /bad client id/);
    await expectError(await fetch(`${server.base}/bad.id/sse?/p=0`), 400, /bad client id/);
    const r = await rawUpgrade(`${server.base}/bad.id/ws`);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toEqual({ error: expect.stringMatching(/bad client id/) });
  });

  it("a channel refused by authorize → 403", async () => {
    await expectError(await form(server.base, "c", "/ok=0&/forbidden/x=0"), 403, /not allowed.*\/forbidden\/x/);
    await expectError(await fetch(`${server.base}/c/sse?/forbidden=0`), 403, /not allowed/);
  });

  it("unknown routes → 404, /ws without an upgrade → 426", async () => {
    await expectError(await fetch(`${server.base}/nope/nothing`), 404, /not found/);
    await expectError(await fetch(`${server.base}/c/ws`), 426, /WebSocket upgrade/);
  });

  it("SSE refuses bad input before opening a stream", async () => {
    const r = await sse(`${server.base}/c/sse?/p=abc`, () => true);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text!)).toEqual({ error: expect.stringMatching(/bad id/) });
  });
});

describe("publish API", () => {
  const publish = (body: string, token: string | null = "sekret") =>
    fetch(`${server.base}/publish`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body,
    });

  it("token, JSON and channel are checked", async () => {
    await expectError(await publish('{"channel":"/x","data":1}', null), 401, /bearer token/);
    await expectError(await publish('{"channel":"/x","data":1}', "wrong"), 401, /bearer token/);
    await expectError(await publish('{"channel":'), 400, /invalid JSON/);
    await expectError(await publish("[1]"), 400, /publish takes/);
    await expectError(await publish('{"channel":"x","data":1}'), 400, /bad channel/);
    await expectError(await publish('{"channel":"/__status","data":1}'), 400, /reserved/);
    await expectError(await publish('{"channel":"/x","data":1,"user_ids":"7"}'), 400, /userIds must be an array/);
    const ok = await publish('{"channel":"/x","data":{"a":1},"user_ids":[7]}');
    expect(await ok.json()).toEqual({ global_id: expect.any(Number), message_id: 1 });
  });

  it("a message over 256 KiB → 413, through HTTP and bus.publish", async () => {
    const data = "d".repeat(256 * 1024);
    await expectError(await publish(JSON.stringify({ channel: "/x", data })), 413, /message too large: at most 262144/);
    await expectError(await publish(JSON.stringify({ channel: "/x", data: data + data })), 413, /too large/);
    await expect(server.bus.publish("/x", data)).rejects.toMatchObject({ name: "ProtocolError", status: 413 });
    // Just under the limit passes (the JSON string adds two quotes).
    expect((await publish(JSON.stringify({ channel: "/x", data: "d".repeat(256 * 1024 - 2) }))).status).toBe(200);
  });

  it("is disabled without a token", async () => {
    const other = await startServer();
    try {
      const res = await fetch(`${other.base}/publish`, { method: "POST", body: '{"channel":"/x","data":1}' });
      await expectError(res, 404, /disabled/);
    } finally {
      await other.close();
    }
  });
});

describe("WebSocket frames", () => {
  async function closeOf(send: (ws: WsClient) => void, opts: { headers?: Record<string, string> } = {}) {
    const ws = new WsClient(wsUrl(server.base, "bad-frames"), opts);
    try {
      await ws.opened;
      send(ws);
      return await ws.whenClosed();
    } finally {
      ws.close();
    }
  }

  it("broken JSON → 1007", async () => {
    expect(await closeOf((ws) => ws.send("{nope"))).toEqual({ code: 1007, reason: "invalid JSON frame" });
  });

  it("binary frame → 1007", async () => {
    expect(await closeOf((ws) => ws.ws.send(Buffer.from("{}")))).toEqual({ code: 1007, reason: expect.stringMatching(/binary/) });
  });

  it("a frame over 64 KiB → 1009", async () => {
    const big = JSON.stringify({ subscribe: { "/p": 0 }, pad: "x".repeat(64 * 1024) });
    expect(await closeOf((ws) => ws.send(big))).toEqual({ code: 1009, reason: "frame too large: at most 65536 bytes" });
    // Far beyond the limit the frame is not even buffered; the code is the same.
    expect((await closeOf((ws) => ws.send("x".repeat(1024 * 1024)))).code).toBe(1009);
    // Exactly at the limit is fine (a valid frame that pads a subscription with spaces).
    const padded = JSON.stringify({ subscribe: { "/p": 0 } });
    const ws = new WsClient(wsUrl(server.base, "at-limit"));
    try {
      await ws.opened;
      ws.send(padded + " ".repeat(64 * 1024 - padded.length));
      await ws.until(() => ws.frames.length >= 2);
      expect(ws.frames[1]).toEqual([]);
    } finally {
      ws.close();
    }
  });

  it("unknown frames and bad subscriptions → 1008 with the reason", async () => {
    expect(await closeOf((ws) => ws.send({ hello: 1 }))).toEqual({ code: 1008, reason: expect.stringMatching(/unknown frame/) });
    expect(await closeOf((ws) => ws.send({ subscribe: { nochannel: 0 } }))).toEqual({ code: 1008, reason: expect.stringMatching(/bad channel/) });
    expect(await closeOf((ws) => ws.send({ subscribe: { "/p": "abc" } }))).toEqual({ code: 1008, reason: expect.stringMatching(/bad id/) });
    expect(await closeOf((ws) => ws.send({ subscribe: [1] }))).toEqual({ code: 1008, reason: expect.stringMatching(/subscription is an object/) });
    expect(await closeOf((ws) => ws.send({ unsubscribe: "/p" }))).toEqual({ code: 1008, reason: expect.stringMatching(/unsubscribe takes an array/) });
    expect(await closeOf((ws) => ws.send({ subscribe: { "/forbidden": 0 } }))).toEqual({ code: 1008, reason: expect.stringMatching(/not allowed/) });
  });

  it("101 channels → 1008, in one frame or added up over several", async () => {
    const chans = (from: number, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`/c${from + i}`, 0]));
    expect(await closeOf((ws) => ws.send({ subscribe: chans(0, 101) }))).toEqual({ code: 1008, reason: expect.stringMatching(/too many channels/) });
    const ws = new WsClient(wsUrl(server.base, "many"));
    try {
      await ws.opened;
      ws.send({ subscribe: chans(0, 60) });
      await ws.until(() => ws.frames.length >= 2);
      ws.send({ subscribe: chans(30, 60) }); // 30 new: 90 in all, fine
      await ws.until(() => ws.frames.length >= 3);
      ws.send({ subscribe: chans(90, 11) }); // 101
      expect(await ws.whenClosed()).toEqual({ code: 1008, reason: expect.stringMatching(/too many channels/) });
    } finally {
      ws.close();
    }
  });
});

describe("WebSocket upgrades", () => {
  it("a foreign Origin → 403; the same host, no Origin and listed origins pass", async () => {
    const r = await rawUpgrade(`${server.base}/o1/ws`, { Origin: "http://evil.example" });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ error: "origin not allowed: http://evil.example" });
    const same = new WsClient(wsUrl(server.base, "o2"), { origin: server.url });
    const none = new WsClient(wsUrl(server.base, "o3"));
    try {
      await Promise.all([same.opened, none.opened]);
    } finally {
      same.close();
      none.close();
    }
    const listed = await startServer({ allowedOrigins: ["http://app.example"] });
    try {
      const ok = new WsClient(wsUrl(listed.base, "o4"), { origin: "http://app.example" });
      await ok.opened;
      ok.close();
      expect((await rawUpgrade(`${listed.base}/o5/ws`, { Origin: listed.url })).status).toBe(403);
    } finally {
      await listed.close();
    }
  });

  it("an upgrade on a path that is not /ws → 404, also outside the bus's base", async () => {
    for (const url of [`${server.base}/c/poll`, `${server.url}/elsewhere`]) {
      const r = await rawUpgrade(url);
      expect(r.status).toBe(404);
      expect(JSON.parse(r.body)).toEqual({ error: "not found" });
    }
  });
});

/** A WebSocket handshake by hand, to read the HTTP answer of a refused upgrade. */
function rawUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": Buffer.from("0123456789abcdef").toString("base64"),
        ...headers,
      },
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode!, body }));
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode!, body: "" });
    });
    req.on("error", reject);
    req.end();
  });
}
