/**
 * Each nginx config really misbehaves the way it claims to, seen with raw requests (no cometbus
 * client): otherwise the browser suite would prove nothing about hostile proxies.
 */
import { request, type IncomingMessage } from "node:http";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { hasNginx, requireService } from "./helpers/services.js";
import { NGINX_CONFIGS, startNginx, type Nginx, type NginxConfig } from "./helpers/nginx.js";
import { heldPoll, startServer, type TestServer } from "./helpers/server.js";
import { waitFor } from "./helpers/wait.js";

const enabled = requireService("nginx", hasNginx(), "apt-get install nginx-light");

interface Pair {
  server: TestServer;
  nginx: Nginx;
  /** HTTP versions the upstream saw, in order. */
  versions: string[];
}

/** A response read as it comes; nothing waits for its headers (a buffering proxy may hold them back too). */
interface Raw {
  response: Promise<IncomingMessage>;
  chunks: Buffer[];
  /** Whether `mark()` had been called when the first body byte arrived (undefined: none yet). */
  firstAfterMark?: boolean;
  mark(): void;
  ended: Promise<void>;
  body(): string;
  destroy(): void;
}

function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Raw {
  let marked = false;
  let gzip = false;
  let endedFn!: () => void;
  const r: Raw = {
    response: null as never,
    chunks: [],
    mark: () => (marked = true),
    ended: new Promise((done) => (endedFn = done)),
    body: () => {
      const buf = Buffer.concat(r.chunks);
      return gzip ? gunzipSync(buf, { finishFlush: 2 /* Z_SYNC_FLUSH: a cut stream is still readable */ }).toString("utf8") : buf.toString("utf8");
    },
    destroy: () => req.destroy(),
  };
  const req = request(url, { method: opts.method ?? "GET", headers: opts.headers, agent: false });
  r.response = new Promise((resolve, reject) => {
    req.on("response", (res: IncomingMessage) => {
      gzip = res.headers["content-encoding"] === "gzip";
      res.on("data", (d: Buffer) => {
        if (r.firstAfterMark === undefined) r.firstAfterMark = marked;
        r.chunks.push(d);
      });
      res.on("end", endedFn);
      res.on("close", endedFn);
      resolve(res);
    });
    req.on("error", (e) => {
      endedFn();
      reject(e);
    });
  });
  r.response.catch(() => {});
  req.end(opts.body);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a WebSocket through nginx: the welcome frame's text, or the reason it failed. */
function wsHandshake(url: string): Promise<{ ok: true; welcome: string } | { ok: false; status?: number; error: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url.replace(/^http/, "ws"), { headers: { Origin: new URL(url).origin } });
    const timer = setTimeout(() => {
      ws.terminate();
      resolve({ ok: false, error: "no welcome" });
    }, 5000);
    ws.on("message", (d) => {
      clearTimeout(timer);
      ws.close();
      resolve({ ok: true, welcome: d.toString() });
    });
    ws.on("unexpected-response", (_req, res) => {
      clearTimeout(timer);
      resolve({ ok: false, status: res.statusCode, error: `HTTP ${res.statusCode}` });
      ws.terminate();
    });
    ws.on("error", (e) => {
      clearTimeout(timer);
      resolve({ ok: false, error: e.message });
    });
  });
}

const sseSubscribers = (s: TestServer) => [...s.bus.hub.subscribers].filter((x) => x.kind === "sse");

describe.runIf(enabled)("nginx configs misbehave as intended", () => {
  const pairs = new Map<NginxConfig, Pair>();
  const at = (c: NginxConfig) => pairs.get(c)!;
  const base = (c: NginxConfig) => at(c).nginx.url + "/message-bus";

  beforeAll(async () => {
    await Promise.all(
      NGINX_CONFIGS.map(async (config) => {
        const server = await startServer();
        const versions: string[] = [];
        server.server.prependListener("request", (req: IncomingMessage) => versions.push(req.httpVersion));
        server.server.prependListener("upgrade", (req: IncomingMessage) => versions.push(req.httpVersion));
        const nginx = await startNginx(config, server.port);
        pairs.set(config, { server, nginx, versions });
      }),
    );
  });

  afterAll(async () => {
    await Promise.all(
      [...pairs.values()].map(async (p) => {
        await p.nginx.stop();
        await p.server.close();
      }),
    );
  });

  it("every config proxies a plain poll", async () => {
    for (const config of NGINX_CONFIGS) {
      await at(config).server.bus.publish("/plain", { config });
      const r = raw(`${base(config)}/c1/poll?dlp=t`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ "/plain": 0 }),
      });
      await r.ended;
      expect((await r.response).statusCode, config).toBe(200);
      const got = JSON.parse(r.body()) as { channel: string; data: unknown }[];
      expect(got.filter((m) => m.channel === "/plain").map((m) => m.data), config).toEqual([{ config }]);
    }
  });

  it("WebSocket handshakes pass only through friendly and short-timeout", async () => {
    const results = Object.fromEntries(
      await Promise.all(NGINX_CONFIGS.map(async (c) => [c, await wsHandshake(`${base(c)}/ws-probe/ws`)] as const)),
    );
    for (const c of ["friendly", "short-timeout"] as const) {
      expect(results[c].ok, `${c}: ${JSON.stringify(results[c])}`).toBe(true);
      expect(JSON.parse((results[c] as { welcome: string }).welcome)[0].channel).toBe("/__status");
    }
    // Without Upgrade the server sees a plain GET of /ws and answers 426.
    for (const c of ["no-upgrade", "buffering", "http10", "all"] as const) {
      expect(results[c], c).toEqual({ ok: false, status: 426, error: "HTTP 426" });
    }
    // The HTTP/1.0 configs really speak HTTP/1.0 to the server.
    expect(new Set(at("http10").versions)).toEqual(new Set(["1.0"]));
    expect(new Set(at("all").versions)).toEqual(new Set(["1.0"]));
    expect(new Set(at("friendly").versions)).toEqual(new Set(["1.1"]));
  });

  it("buffering and all hold an SSE stream's bytes back until the response ends", async () => {
    const configs = ["buffering", "all", "friendly", "no-upgrade", "http10", "short-timeout"] as const;
    const streams = await Promise.all(
      configs.map(async (c) => {
        const r = raw(`${base(c)}/sse-${c}/sse`, {
          method: "POST",
          headers: { "content-type": "application/json", "accept-encoding": "gzip" },
          body: JSON.stringify({ "/buffered": 0 }),
        });
        return [c, r] as const;
      }),
    );
    for (const [c] of streams) {
      await waitFor(() => sseSubscribers(at(c).server).length === 1, `${c}: the SSE subscriber`);
      for (let i = 1; i <= 3; i++) await at(c).server.bus.publish("/buffered", { i });
    }
    const byConfig = new Map(streams);
    // Unbuffered configs pass every message on while the stream is open...
    for (const c of ["friendly", "no-upgrade", "http10", "short-timeout"] as const) {
      const r = byConfig.get(c)!;
      await waitFor(() => r.body().includes('"data":{"i":3}'), `${c}: the third message while open`);
      expect(r.firstAfterMark, c).toBe(false);
      expect((await r.response).headers["content-encoding"], c).toBeUndefined();
    }
    // ...buffering ones have passed nothing on after the same time and more (a safety margin, not a measurement).
    await sleep(500);
    for (const c of ["buffering", "all"] as const) {
      const r = byConfig.get(c)!;
      expect(r.chunks.length, `${c} passed bytes on before the response ended`).toBe(0);
      r.mark();
      for (const s of sseSubscribers(at(c).server)) s.close();
      await r.ended;
      expect((await r.response).headers["content-encoding"], c).toBe("gzip");
      expect(r.firstAfterMark, c).toBe(true);
      const body = r.body();
      for (let i = 1; i <= 3; i++) expect(body, c).toContain(`"data":{"i":${i}}`);
    }
    for (const [, r] of streams) r.destroy();
  });

  it("buffering holds a chunked long-poll's first chunk back until the response ends", async () => {
    const open = (c: NginxConfig) =>
      raw(`${base(c)}/chunky-${c}/poll`, {
        method: "POST",
        headers: { "content-type": "application/json", "accept-encoding": "gzip" },
        body: JSON.stringify({ "/chunky": 0 }),
      });
    for (const c of ["friendly", "buffering"] as const) await at(c).server.bus.publish("/chunky", { c });
    const friendly = open("friendly");
    const buffering = open("buffering");
    await waitFor(() => friendly.body().includes('"data":{"c":"friendly"}'), "friendly's first chunk while open");
    await waitFor(() => heldPoll(at("buffering").server.bus, "chunky-buffering") !== undefined, "the held poll behind buffering");
    await sleep(500);
    expect(buffering.chunks.length, "buffering passed the first chunk on while the poll was held").toBe(0);
    buffering.mark();
    heldPoll(at("buffering").server.bus, "chunky-buffering")!.close();
    await buffering.ended;
    expect(buffering.firstAfterMark).toBe(true);
    expect((await buffering.response).headers["content-encoding"]).toBe("gzip");
    expect(buffering.body()).toMatch(/^\[.*"data":\{"c":"buffering"\}.*\]\r\n\|\r\n\[\]\r\n\|\r\n$/);
    friendly.destroy();
  });

  it("http10 gets plain long-polls where friendly gets chunked ones", async () => {
    const poll = async (c: NginxConfig) => {
      await at(c).server.bus.publish("/chunks", 1);
      const r = raw(`${base(c)}/chunk-${c}/poll`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ "/chunks": 0 }),
      });
      const res = await r.response;
      // A chunked poll stays open after its first chunk; a plain one ends with its answer.
      await waitFor(() => r.body().includes('"channel":"/chunks"'), `${c}: the first answer`);
      r.destroy();
      return { type: res.headers["content-type"], body: r.body() };
    };
    const friendly = await poll("friendly");
    expect(friendly.type).toBe("text/plain; charset=utf-8");
    expect(friendly.body).toMatch(/^\[.*\]\r\n\|\r\n/);
    const http10 = await poll("http10");
    expect(http10.type).toBe("application/json; charset=utf-8");
    expect(JSON.parse(http10.body)[0]).toMatchObject({ channel: "/chunks", message_id: 1, data: 1 });
  });

  it("short-timeout cuts a quiet long-poll with 504 and a quiet stream without a word", async () => {
    const c = "short-timeout";
    const { server } = at(c);
    const longPoll = raw(`${base(c)}/quiet-lp/poll`, {
      method: "POST",
      headers: { "content-type": "application/json", "dont-chunk": "true" },
      body: JSON.stringify({ "/quiet": 0 }),
    });
    const sse = raw(`${base(c)}/quiet-sse/sse`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ "/quiet": 0 }),
    });
    await longPoll.ended;
    // The server holds a long-poll for 25 s; the proxy gave up long before that.
    expect((await longPoll.response).statusCode).toBe(504);
    await sse.ended;
    expect((await sse.response).statusCode).toBe(200);
    // Nothing here ends a stream server-side (no bus.close, no slow consumer): the proxy cut it.
    expect(sse.body()).toContain("retry: 1000");
    expect(server.bus.stats().epoch).toBeTruthy();
  }, 30_000);
});
