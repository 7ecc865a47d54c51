import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, poll, WsClient, wsUrl } from "./fixtures/clients.js";
import { startServer, type TestServer } from "./helpers/server.js";

/**
 * Seeded random bad input over every entry point: nothing may answer 500 or crash, every error is
 * a JSON `{error}`, and the server still serves a plain poll afterwards. The seed is printed on failure.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261122);

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ["/", "/a", "/chat/42", "__seq", "__epoch", "-1", "0", "-3", "99999999999999999", "1.5", "abc", "", "=", "&", "%", "%2F", "%ZZ",
  "é", "😀", "\u0000", " ", "{", "}", "[", "]", '"', ":", ",", "null", "true", "\r\n|\r\n", "/__status", "x".repeat(300)];

let server: TestServer;
const errors: unknown[] = [];
beforeAll(async () => {
  server = await startServer({ longPollTimeout: 50, onError: (e) => errors.push(e), authorize: (_c, ch) => ch !== "/no" });
});
afterAll(async () => {
  await server?.close();
});

describe(`fuzz (FUZZ_SEED=${SEED})`, () => {
  it("HTTP: random bodies, queries, client ids and content types never get a 500", async () => {
    const r = rng(SEED);
    const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
    const junk = () => Array.from({ length: 1 + Math.floor(r() * 8) }, () => pick(PIECES)).join("");
    const seen = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const clientId = r() < 0.8 ? `c${i}` : encodeURIComponent(junk());
      const path = pick(["poll", "poll?dlp=t", "sse", "ws", "publish", "stats", junk()]);
      const method = pick(["GET", "POST", "POST", "PUT", "DELETE"]);
      const type = pick(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]);
      const body = method === "GET" ? undefined : r() < 0.3 ? JSON.stringify({ [junk()]: pick([junk(), 0, -1, null, [1], { a: 1 }]) }) : junk();
      const url = `${server.base}/${clientId}/${path}${r() < 0.3 ? (path.includes("?") ? "&" : "?") + junk() : ""}`;
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: { ...(type ? { "Content-Type": type } : {}), ...(r() < 0.3 ? { "Dont-Chunk": "true" } : {}) },
          body,
          signal: AbortSignal.timeout(5000),
        });
      } catch (e) {
        // A URL fetch itself refuses (bad percent-encoding in the path) never reached the server.
        if (e instanceof TypeError && /Invalid URL|URI/.test(String(e.message))) continue;
        throw new Error(`request ${i} ${method} ${url} failed: ${e}`, { cause: e });
      }
      // A well-formed SSE subscription is a stream that never ends: its first bytes are enough.
      const streaming = res.status === 200 && res.headers.get("content-type")?.startsWith("text/event-stream");
      const text = streaming ? (await res.body!.cancel(), "") : await res.text();
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
      expect({ i, method, url, status: res.status }).toEqual({ i, method, url, status: expect.toSatisfy((s: number) => s < 500) });
      if (res.status >= 400) {
        expect({ i, url, body: JSON.parse(text) }).toEqual({ i, url, body: { error: expect.any(String) } });
      }
    }
    expect(errors).toEqual([]);
    // Both kinds of answer happened: the fuzz reached the handlers, not only the router.
    expect(seen.get(200)).toBeGreaterThan(0);
    expect(seen.get(400)).toBeGreaterThan(0);
    const ok = await poll(server.base, "after-fuzz", { "/alive": -1 });
    expect(parse(ok.text)).toEqual([{ global_id: -1, message_id: -1, channel: "/__status", data: { "/alive": 0 } }]);
  });

  it("WebSocket: random frames close with 1007/1008/1009 and a reason, or are answered", async () => {
    const r = rng(SEED + 1);
    const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
    const junk = () => Array.from({ length: 1 + Math.floor(r() * 8) }, () => pick(PIECES)).join("");
    for (let i = 0; i < 60; i++) {
      const ws = new WsClient(wsUrl(server.base, `fz${i}`));
      try {
        await ws.opened;
        const frame = pick([
          () => junk(),
          () => JSON.stringify({ subscribe: { [junk()]: pick([junk(), 0, -1, 5, null, [], {}]) } }),
          () => JSON.stringify({ unsubscribe: pick([[junk()], junk(), 5, null]) }),
          () => JSON.stringify(pick([[], {}, null, 1, "x", { subscribe: null }, { subscribe: [] }])),
        ])();
        ws.send(frame);
        ws.send({ subscribe: { "/fuzz-ok": -1 } });
        const outcome = await ws.until(
          () => ws.closed ?? (ws.messages().some((m) => m.channel === "/__status" && "/fuzz-ok" in (m.data as object)) ? "answered" : undefined),
          `frame ${i}`,
        ).catch(() => ws.closed);
        if (outcome !== "answered") {
          expect({ i, frame, code: outcome?.code }).toEqual({ i, frame, code: expect.toSatisfy((c: number) => [1007, 1008, 1009].includes(c)) });
          expect(outcome?.reason.length).toBeGreaterThan(0);
        }
      } finally {
        ws.close();
      }
    }
    expect(errors).toEqual([]);
  });
});
