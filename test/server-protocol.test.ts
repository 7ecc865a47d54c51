import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { longPoll, parse, poll, sse, WsClient, wsUrl, type SseEvent } from "./fixtures/clients.js";
import { startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const msg = (ch: string, id: number, data: unknown) => expect.objectContaining({ channel: ch, message_id: id, data });
const status = (data: Record<string, unknown>) => ({ global_id: -1, message_id: -1, channel: "/__status", data });

describe("WebSocket subscribe / unsubscribe", () => {
  it("an unsubscribed channel stops; subscribing again from a position resumes it exactly", async () => {
    server = await startServer();
    const bus = server.bus;
    const ws = new WsClient(wsUrl(server.base, "unsub"));
    try {
      await ws.opened;
      ws.send({ subscribe: { "/a": 0, "/b": 0 } });
      await ws.until(() => ws.frames.length >= 2);
      await bus.publish("/a", "a1");
      await bus.publish("/b", "b1");
      await ws.until(() => ws.messages().length >= 3);
      ws.send({ unsubscribe: ["/a", "/never-subscribed"] });
      // An unsubscribe has no answer; frames are handled in order, so the answer to a later
      // subscribe proves it was.
      ws.send({ subscribe: { "/sync": -1 } });
      await ws.until(() => ws.messages().some((m) => m.channel === "/__status" && "/sync" in (m.data as object)));
      await bus.publish("/a", "a2");
      await bus.publish("/b", "b2");
      await ws.until(() => ws.messages().some((m) => m.data === "b2"));
      expect(ws.messages().filter((m) => m.channel !== "/__status").map((m) => m.data)).toEqual(["a1", "b1", "b2"]);
      ws.send({ subscribe: { "/a": 1 } });
      await ws.until(() => ws.messages().some((m) => m.data === "a2"));
      await bus.publish("/a", "a3");
      await ws.until(() => ws.messages().some((m) => m.data === "a3"));
      expect(ws.messages().filter((m) => m.channel === "/a").map((m) => m.message_id)).toEqual([1, 2, 3]);
      expect(bus.stats().channels).toBe(3);
    } finally {
      ws.close();
    }
  });
});

describe("other ways to ask", () => {
  it("SSE by POST with a form or JSON body", async () => {
    server = await startServer();
    await server.bus.publish("/p", "m1");
    for (const [type, body] of [
      ["application/x-www-form-urlencoded", "%2Fp=0"],
      ["application/json", '{"/p":0}'],
    ]) {
      const res = await fetch(`${server.base}/post-sse/sse`, { method: "POST", headers: { "Content-Type": type }, body });
      expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      const reader = res.body!.getReader();
      let text = "";
      while (!text.includes('"data":"m1"')) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      expect(text).toContain(`id: ${server.bus.backend.epoch}:1\ndata: {"global_id":1,"message_id":1,"channel":"/p","data":"m1"}\n\n`);
    }
  });

  it("GET poll reads the query, passing over keys that are not channels (dlp, cache busters)", async () => {
    server = await startServer();
    await server.bus.publish("/g", "m1");
    const res = await fetch(`${server.base}/get-poll/poll?dlp=t&_=12345&%2Fg=0`);
    expect(res.status).toBe(200);
    expect(parse(await res.text())).toEqual([msg("/g", 1, "m1")]);
  });

  it("longPolling: false answers every poll at once", async () => {
    server = await startServer({ longPolling: false, longPollTimeout: 60_000 });
    const a = await longPoll(server.base, "nolp", { "/n": 0 });
    expect(a.text).toBe("[]");
    expect(a.headers.get("content-type")).toBe("application/json; charset=utf-8");
  });

  it("an HTTP/1.0 client gets a plain long-poll answer, never a chunked one", async () => {
    server = await startServer({ longPollTimeout: 5000 });
    const port = server.port;
    const raw = new Promise<string>((resolve, reject) => {
      const body = "%2Fold=0";
      const sock = connect(port, "127.0.0.1", () => {
        sock.write(
          `POST /message-bus/old-http/poll HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
      });
      let got = "";
      sock.setEncoding("utf8");
      sock.on("data", (d) => (got += d));
      sock.on("end", () => resolve(got));
      sock.on("error", reject);
    });
    await waitFor(() => server!.bus.stats().subscribers["long-poll"] !== 0, "the long-poll held", 1000);
    expect(server.bus.stats().subscribers).toMatchObject({ "long-poll": 1, chunked: 0 });
    await server.bus.publish("/old", "m1");
    const text = await raw;
    expect(text).toMatch(/^HTTP\/1\.[01] 200/);
    expect(text.toLowerCase()).not.toContain("transfer-encoding: chunked");
    expect(text.toLowerCase()).toContain("content-type: application/json; charset=utf-8");
    expect(parse(text.slice(text.indexOf("\r\n\r\n") + 4))).toEqual([msg("/old", 1, "m1")]);
  });
});

describe("sites, ages and epochs", () => {
  it("siteId: a message for one site never reaches another, live or from the backlog", async () => {
    server = await startServer({ siteIdLookup: (c) => c.req.header("x-site") ?? null, longPollTimeout: 3000 });
    const ws1 = new WsClient(wsUrl(server.base, "site1"), { headers: { "x-site": "one" } });
    const ws2 = new WsClient(wsUrl(server.base, "site2"), { headers: { "x-site": "two" } });
    try {
      await Promise.all([ws1.opened, ws2.opened]);
      ws1.send({ subscribe: { "/s": 0 } });
      ws2.send({ subscribe: { "/s": 0 } });
      await ws1.until(() => ws1.frames.length >= 2);
      await ws2.until(() => ws2.frames.length >= 2);
      await server.bus.publish("/s", "for one", { siteId: "one" });
      await server.bus.publish("/s", "for two", { siteId: "two" });
      await server.bus.publish("/s", "for all");
      await ws1.until(() => ws1.messages().some((m) => m.data === "for all"));
      await ws2.until(() => ws2.messages().some((m) => m.data === "for all"));
      expect(ws1.messages().filter((m) => m.channel === "/s").map((m) => m.data)).toEqual(["for one", "for all"]);
      expect(ws2.messages().filter((m) => m.channel === "/s").map((m) => m.data)).toEqual(["for two", "for all"]);
    } finally {
      ws1.close();
      ws2.close();
    }
    const none = parse((await poll(server.base, "nosite", { "/s": 0 })).text);
    expect(none).toEqual([msg("/s", 3, "for all")]);
    const two = parse((await poll(server.base, "two", { "/s": 0 }, { headers: { "x-site": "two" } })).text);
    expect(two).toEqual([msg("/s", 2, "for two"), msg("/s", 3, "for all")]);
  });

  it("a message past its maxBacklogAge is gone, and the gap is reported", async () => {
    server = await startServer();
    await server.bus.publish("/age", "short-lived", { maxBacklogAge: 0.02 });
    await server.bus.publish("/age", "kept");
    await new Promise((r) => setTimeout(r, 60));
    // A message expiring takes the older ones with it; here only the first expired.
    expect(parse((await poll(server.base, "age", { "/age": 0 })).text)).toEqual([
      msg("/age", 2, "kept"),
      status({ "/age": 2, __reset: ["/age"] }),
    ]);
  });

  it("__epoch \"\" (a client that knows epochs but not this one yet) is told the epoch", async () => {
    server = await startServer();
    await server.bus.publish("/e", "m1");
    const a = parse((await poll(server.base, "ep", { "/e": 0 }, { extra: { __epoch: "" } })).text);
    expect(a).toEqual([msg("/e", 1, "m1"), status({ __epoch: server.bus.backend.epoch })]);
  });

  it("SSE with a Last-Event-ID from another epoch (a restarted server) gets the whole backlog and __reset", async () => {
    server = await startServer();
    await server.bus.publish("/x", "m1");
    await server.bus.publish("/x", "m2");
    const epoch = server.bus.backend.epoch;
    const events: SseEvent[] = [];
    await sse(`${server.base}/restart/sse?/x=-1`, (e) => (events.push(e), events.length >= 3), {
      headers: { "Last-Event-ID": "oldepoch:7" },
    });
    expect(events.map((e) => JSON.parse(e.data))).toEqual([
      status({ __epoch: epoch, __spread: expect.any(Number), __reset: ["/x"], "/x": 0 }),
      msg("/x", 1, "m1"),
      msg("/x", 2, "m2"),
    ]);
    expect(events.map((e) => e.id)).toEqual([`${epoch}:0`, `${epoch}:1`, `${epoch}:2`]);
  });

  it("SSE ignores a Last-Event-ID that does not fit the URL and starts from the URL's positions", async () => {
    server = await startServer();
    await server.bus.publish("/x", "m1");
    await server.bus.publish("/x", "m2");
    for (const id of ["garbage", "abc:1,2", "abc:-1", ""]) {
      const events: SseEvent[] = [];
      await sse(`${server.base}/lei/sse?/x=1`, (e) => (events.push(e), events.length >= 2), { headers: { "Last-Event-ID": id } });
      expect(events.map((e) => JSON.parse(e.data) as Message)[1]).toEqual(msg("/x", 2, "m2"));
    }
  });
});

describe("server-side subscribe", () => {
  it("sees every message, targeted too, in order, from a position", async () => {
    server = await startServer();
    await server.bus.publish("/srv", "m1");
    await server.bus.publish("/srv", "m2", { userIds: [7] });
    const seen: unknown[] = [];
    const stop = server.bus.subscribe("/srv", (m) => seen.push([m.message_id, m.data]), 1);
    await server.bus.publish("/srv", "m3", { groupIds: [1] });
    await waitFor(() => seen.length >= 2, "m2 and m3 at the server-side subscriber", 1000);
    stop();
    await server.bus.publish("/srv", "m4");
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([
      [2, "m2"],
      [3, "m3"],
    ]);
  });
});
