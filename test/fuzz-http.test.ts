import net from "node:net";
import fc from "fast-check";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, it } from "vitest";
import {
  anyString,
  badMessage,
  brief,
  channelish,
  clientIdSegment,
  contentType,
  contractChannel,
  deepControlText,
  deepText,
  formText,
  fuzz,
  headerValue,
  jsonBodyText,
  jsonValueText,
  lastEventId,
  longMultibyte,
  loneSurrogate,
  numberText,
  percentEncode,
  queryText,
  rawBytes,
  shown,
  stringText,
  subscriptionText,
  validClientId,
  valueText,
} from "./helpers/fuzz-arbitraries.js";
import { FuzzWatch } from "./helpers/fuzz-watch.js";
import { startServer, type TestServer } from "./helpers/server.js";
import type { Listening } from "../server/node/listen.js";

/**
 * Every HTTP endpoint under property-based fuzzing, over raw TCP so that every byte is ours (raw
 * invalid UTF-8, any Content-Length, pipelining, requests cut anywhere). After every run:
 * nothing answered >= 500 but 503, every 4xx was a JSON {"error": string}, streams were streams,
 * onError was never called, no promise was left rejected, and a publish then a poll still delivers.
 */
const FILE = "test/fuzz-http.test.ts";
const TOKEN = "fuzz-token";
/** Refused by `authorize`. */
const REFUSED = "/no";
/** A request that gets no complete answer in this long is a hang (long-polls are held 50 ms). */
const ANSWER_MS = 4000;

/** The server under fuzz now: `routed`, or `direct` in the direct-poll suite. */
let server: TestServer;
/** With `authorize` set: every request goes through Hono (the lookups get its Context). */
let routed: TestServer;
/** No lookups: `listen()` answers polls straight from node:http (server/node/direct-poll.ts). */
let direct: TestServer;
/** `direct`'s own bus served through a Hono app: what a poll answered directly must equal. */
let twin: Listening;
let BASE = "/message-bus";
const watch = new FuzzWatch();

beforeAll(async () => {
  watch.install();
  const options = { longPollTimeout: 50, onError: watch.onError, publishToken: TOKEN, clientPublish: (_c: unknown, ch: string) => ch === "/pub" };
  routed = server = await startServer({ ...options, authorize: (_c, ch) => ch !== REFUSED });
  direct = await startServer(options);
  for (const s of [routed, direct]) s.bus.handle("echo", (data) => data);
  BASE = server.bus.options.base;
  const app = new Hono().route(BASE, direct.bus.routes());
  app.notFound((c) => c.json({ error: "not found" }, 404));
  twin = await direct.bus.listen(0, "127.0.0.1", app);
});
afterAll(async () => {
  await twin?.close();
  await direct?.close();
  await routed?.close();
  watch.uninstall();
});

// ---- a raw HTTP/1.1 client ----------------------------------------------------------------------

type HeaderValue = string | Uint8Array;

interface RawRequest {
  method: string;
  /** Path and query exactly as sent (bytes may be anything). */
  target: HeaderValue;
  headers: [string, HeaderValue][];
  body?: Uint8Array;
  /** "length": Content-Length (unless `headers` has one); "chunked": Transfer-Encoding. */
  framing?: "length" | "chunked";
}

const bytes = (v: HeaderValue) => (typeof v === "string" ? Buffer.from(v, "latin1") : Buffer.from(v));
const utf8 = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));

function serialize(r: RawRequest): Buffer {
  const parts: Buffer[] = [Buffer.from(`${r.method} `), bytes(r.target), Buffer.from(" HTTP/1.1\r\nHost: 127.0.0.1\r\n")];
  // "{epoch}" in a header value (Last-Event-ID) stands for the server's epoch.
  const epoch = server.bus.stats().epoch;
  for (const [k, v] of r.headers) {
    parts.push(Buffer.from(`${k}: `), typeof v === "string" ? Buffer.from(v.replace("{epoch}", epoch), "latin1") : Buffer.from(v), Buffer.from("\r\n"));
  }
  const body = r.body ? Buffer.from(r.body) : Buffer.alloc(0);
  const hasLength = r.headers.some(([k]) => k.toLowerCase() === "content-length");
  if (r.framing === "chunked") {
    parts.push(Buffer.from("Transfer-Encoding: chunked\r\n\r\n"));
    if (body.length) parts.push(Buffer.from(body.length.toString(16) + "\r\n"), body, Buffer.from("\r\n"));
    parts.push(Buffer.from("0\r\n\r\n"));
  } else {
    if (!hasLength && (body.length || r.method === "POST")) parts.push(Buffer.from(`Content-Length: ${body.length}\r\n`));
    parts.push(Buffer.from("\r\n"), body);
  }
  return Buffer.concat(parts);
}

interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: Buffer;
  /** An SSE or chunked long-poll 200: only its first chunk was read. */
  stream: boolean;
}

interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection. */
  closed: boolean;
  /** Bytes that are not a response. */
  garbage?: string;
  timedOut: boolean;
}

/**
 * Parses responses from `buf` in order, one per method in `methods`; stops at the first stream
 * (its first chunk is enough, and nothing pipelined after it can come) or at a response that
 * closes the connection.
 */
function parseResponses(buf: Buffer, methods: string[], closed: boolean): { responses: RawResponse[]; done: boolean; garbage?: string } {
  const responses: RawResponse[] = [];
  let pos = 0;
  for (;;) {
    if (responses.length === methods.length) return { responses, done: true };
    const end = buf.indexOf("\r\n\r\n", pos);
    if (end === -1) {
      if (closed && pos < buf.length) return { responses, done: true, garbage: brief(buf.subarray(pos)) };
      return { responses, done: closed };
    }
    const lines = buf.subarray(pos, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!m) return { responses, done: true, garbage: brief(buf.subarray(pos)) };
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    let at = end + 4;
    if (status === 100) {
      pos = at;
      continue;
    }
    const method = methods[responses.length];
    const type = headers.get("content-type") ?? "";
    const chunked = /chunked/i.test(headers.get("transfer-encoding") ?? "");
    let body: Buffer;
    let stream = false;
    if (method === "HEAD" || status === 204 || status === 304 || status === 101) {
      body = Buffer.alloc(0);
    } else if (chunked) {
      const isStream = status === 200 && (type.startsWith("text/event-stream") || type.startsWith("text/plain"));
      const pieces: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = buf.indexOf("\r\n", at);
        if (lineEnd === -1) break;
        const size = parseInt(buf.subarray(at, lineEnd).toString("latin1"), 16);
        if (!Number.isFinite(size)) return { responses, done: true, garbage: `bad chunk size ${brief(buf.subarray(at, lineEnd))}` };
        if (buf.length < lineEnd + 2 + size + 2) break;
        if (size === 0) {
          at = lineEnd + 4;
          complete = true;
          break;
        }
        pieces.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
        if (isStream) break;
      }
      if (isStream && pieces.length) {
        responses.push({ status, headers, body: Buffer.concat(pieces), stream: true });
        return { responses, done: true };
      }
      if (!complete) return { responses, done: closed, garbage: closed ? "a chunked body cut short" : undefined };
      body = Buffer.concat(pieces);
    } else if (headers.has("content-length")) {
      const n = Number(headers.get("content-length"));
      if (buf.length < at + n) return { responses, done: closed, garbage: closed ? "a body shorter than its Content-Length" : undefined };
      body = buf.subarray(at, at + n);
      at += n;
    } else {
      // No length: the body runs to the end of the connection.
      if (!closed) return { responses, done: false };
      body = buf.subarray(at);
      at = buf.length;
    }
    responses.push({ status, headers, body, stream });
    pos = at;
    if (/close/i.test(headers.get("connection") ?? "")) return { responses, done: true };
  }
}

/**
 * Writes `data` on a fresh connection and reads the answers to `methods`. `cut`: write only the
 * first bytes, then end the connection ("close"), or keep it open `openMs` before ending it.
 */
function exchange(data: Buffer, methods: string[], opts: { cut?: { at: number; openMs: number }; timeoutMs?: number; port?: number } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(opts.port ?? server.port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let closed = false;
    let finished = false;
    const finish = (timedOut: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const parsed = parseResponses(Buffer.concat(chunks), methods, closed);
      socket.destroy();
      resolve({ responses: parsed.responses, closed, garbage: parsed.garbage, timedOut });
    };
    const check = () => {
      const parsed = parseResponses(Buffer.concat(chunks), methods, closed);
      if (parsed.done) finish(false);
    };
    const timer = setTimeout(() => finish(!opts.cut), opts.cut ? opts.cut.openMs + 100 : (opts.timeoutMs ?? ANSWER_MS));
    socket.on("data", (d) => {
      chunks.push(d);
      check();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      check();
      finish(false);
    });
    socket.on("connect", () => {
      if (!opts.cut) return void socket.write(data);
      socket.write(data.subarray(0, opts.cut.at));
      setTimeout(() => socket.end(), opts.cut.openMs);
    });
  });
}

// ---- what every answer must be ------------------------------------------------------------------

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Why a response breaks the contract, or null. `target`: an SSE subscription's 200 must be a stream. */
function badResponse(res: RawResponse, method: string, target?: HeaderValue): string | null {
  const { status } = res;
  if (status >= 500 && status !== 503) return `status ${status}: ${brief(res.body)}`;
  if (method === "HEAD" || status === 101 || status === 204 || status === 304) return null;
  const type = res.headers.get("content-type") ?? "";
  // OPTIONS is a CORS preflight, answered 200 "OK" as message_bus does: not a subscription.
  const sse = method !== "OPTIONS" && target !== undefined && /^[^?]*\/sse(\?|$)/.test(bytes(target).toString("latin1"));
  if (sse && status === 200 && !type.startsWith("text/event-stream")) return `an SSE subscription answered 200 with Content-Type ${JSON.stringify(type)}: ${brief(res.body)}`;
  if (status >= 400 && status < 500) {
    if (!type.includes("application/json")) return `${status} with Content-Type ${JSON.stringify(type)}: ${brief(res.body)}`;
    let text: string;
    try {
      text = strictUtf8.decode(res.body);
    } catch {
      return `${status} body is not valid UTF-8: ${brief(res.body)}`;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return `${status} body is not JSON: ${brief(text)}`;
    }
    const error = (body as { error?: unknown } | null)?.error;
    if (typeof error !== "string" || error === "") return `${status} body is not {"error": string}: ${brief(text)}`;
    return null;
  }
  if (res.stream) {
    const first = res.body.toString("utf8");
    if (type.startsWith("text/event-stream")) return first.startsWith("retry:") || first.startsWith(":") || first.startsWith("id:") ? null : `SSE starts ${brief(first)}`;
    const sep = first.indexOf("\r\n|\r\n");
    if (sep === -1) return `chunked long-poll's first chunk has no separator: ${brief(first)}`;
    try {
      if (!Array.isArray(JSON.parse(first.slice(0, sep)))) return `chunked long-poll's first chunk is not an array: ${brief(first)}`;
    } catch {
      return `chunked long-poll's first chunk is not JSON: ${brief(first)}`;
    }
    return null;
  }
  if (status === 200 && type.includes("application/json")) {
    try {
      JSON.parse(res.body.toString("utf8"));
    } catch {
      return `200 JSON body does not parse: ${brief(res.body)}`;
    }
  }
  return null;
}

/** The 4xx error message, if any. */
function errorMessage(res: RawResponse): string | undefined {
  if (res.status < 400 || res.status >= 500) return undefined;
  try {
    const e = (JSON.parse(res.body.toString("utf8")) as { error?: unknown }).error;
    return typeof e === "string" ? e : undefined;
  } catch {
    return undefined;
  }
}

let aliveCount = 0;

/** The server still serves: a publish, then a poll from 0, gets it. */
async function stillServes(): Promise<void> {
  const n = ++aliveCount;
  const channel = `/alive/${n}`;
  const url = server.url + BASE;
  const pub = await fetch(`${url}/publish`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ channel, data: { n } }),
    signal: AbortSignal.timeout(ANSWER_MS),
  });
  if (pub.status !== 200) throw new Error(`after the run, a publish got ${pub.status}: ${await pub.text()}`);
  await pub.text();
  const res = await fetch(`${url}/alive-check/poll?dlp=t`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ [channel]: 0 }),
    signal: AbortSignal.timeout(ANSWER_MS),
  });
  const text = await res.text();
  const got = res.status === 200 ? (JSON.parse(text) as { channel: string; data: { n?: number } }[]) : [];
  if (!got.some((m) => m.channel === channel && m.data?.n === n)) throw new Error(`after the run, a poll did not deliver the publish: ${res.status} ${brief(text)}`);
}

/** Before each run: what a failed run left recorded is dropped. */
const beforeRun = () => watch.reset();

/** After each run: the server still serves, nothing is left subscribed, nothing went wrong. */
const afterRun = () => watch.check(server, stillServes);

/** Statuses seen, to show the fuzz reached the handlers (200s) and their checks (400s). */
const statuses = new Map<number, number>();

/** Sends the requests in one write and checks every answer that must come. */
async function send(reqs: RawRequest[]): Promise<Exchange> {
  const methods = reqs.map((r) => r.method);
  const ex = await exchange(Buffer.concat(reqs.map(serialize)), methods);
  for (const res of ex.responses) statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  for (const [i, res] of ex.responses.entries()) {
    const bad = badResponse(res, methods[i], reqs[i].target);
    if (bad) throw new Error(`request ${i + 1} of ${reqs.length} (${methods[i]} ${brief(reqs[i].target, 100)}): ${bad}`);
  }
  if (ex.garbage) throw new Error(`not an HTTP response: ${ex.garbage}`);
  const last = ex.responses.at(-1);
  const stoppedEarly = last && (last.stream || /close/i.test(last.headers.get("connection") ?? ""));
  if (ex.responses.length < reqs.length && !stoppedEarly) {
    const what = ex.timedOut ? `no answer within ${ANSWER_MS} ms` : "the connection closed without an answer";
    throw new Error(`request ${ex.responses.length + 1} of ${reqs.length} (${methods[ex.responses.length]} ${brief(reqs[ex.responses.length].target, 100)}): ${what}`);
  }
  return ex;
}

// ---- requests -----------------------------------------------------------------------------------

const pollVariant = fc.constantFrom("dlp", "long-poll", "chunked");
type PollVariant = "dlp" | "long-poll" | "chunked";

function pollTarget(id: string, variant: PollVariant, extra: string | null): string {
  const q = variant === "dlp" ? "?dlp=t" : "";
  return `${BASE}/${id}/poll${q}${extra === null ? "" : (q ? "&" : "?") + extra}`;
}
function pollHeaders(variant: PollVariant): [string, HeaderValue][] {
  return variant === "long-poll" ? [["Dont-Chunk", "true"]] : [];
}

const framing = fc.constantFrom<"length" | "chunked">("length", "length", "length", "chunked");
const extraQuery = fc.option(queryText, { freq: 3 });

/** JSON subscriptions of any shape to every poll variant. */
const pollJsonRequest: fc.Arbitrary<RawRequest> = fc
  .record({ id: clientIdSegment, variant: pollVariant, body: fc.oneof({ weight: 6, arbitrary: jsonBodyText }, { weight: 1, arbitrary: deepControlText }), type: fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain; application/json"), framing, extra: extraQuery })
  .map(({ id, variant, body, type, framing, extra }) => ({
    method: "POST",
    target: pollTarget(id, variant, extra),
    headers: [["Content-Type", type], ...pollHeaders(variant)],
    body: utf8(body),
    framing,
  }));

/** Form bodies with bad percent-encoding, raw invalid UTF-8, any Content-Type. */
const anyBody: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: formText.map(utf8) },
  { weight: 3, arbitrary: rawBytes },
  { weight: 2, arbitrary: jsonBodyText.map(utf8) },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
  { weight: 1, arbitrary: longMultibyte(100_000).map((s) => utf8("/a=" + s)) },
);
const pollOtherRequest: fc.Arbitrary<RawRequest> = fc
  .record({ id: clientIdSegment, variant: pollVariant, body: anyBody, type: contentType, framing, extra: extraQuery, method: fc.constantFrom("POST", "POST", "POST", "GET") })
  .map(({ id, variant, body, type, framing, extra, method }) => ({
    method,
    target: pollTarget(id, variant, extra),
    headers: [...(type === null ? [] : ([["Content-Type", type]] as [string, HeaderValue][])), ...pollHeaders(variant)],
    body,
    framing,
  }));

/** GET subscriptions in the query string (ASCII on the wire: everything else percent-encoded). */
const subscriptionQuery: fc.Arbitrary<string> = fc.oneof(
  queryText,
  fc.array(fc.tuple(channelish, fc.oneof(valueText, numberText)), { maxLength: 5 }).map((pairs) => pairs.map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`).join("&")),
);
const queryRequest: fc.Arbitrary<RawRequest> = fc
  .record({ id: clientIdSegment, endpoint: fc.constantFrom<PollVariant | "sse">("dlp", "long-poll", "chunked", "sse"), query: subscriptionQuery, method: fc.constant("GET") })
  .map(({ id, endpoint, query, method }) => ({
    method,
    target: endpoint === "sse" ? `${BASE}/${id}/sse?${query}` : pollTarget(id, endpoint, query),
    headers: endpoint === "sse" ? [["Accept", "text/event-stream"]] : pollHeaders(endpoint),
  }));

/** SSE: GET with a query or POST with a body, and any Last-Event-ID. */
const sseRequest: fc.Arbitrary<RawRequest> = fc
  .record({
    id: clientIdSegment,
    post: fc.boolean(),
    query: subscriptionQuery,
    body: fc.oneof(subscriptionText.map(utf8), anyBody),
    type: contentType,
    lastId: fc.option(lastEventId, { freq: 4 }),
    framing,
  })
  .map(({ id, post, query, body, type, lastId, framing }) => ({
    method: post ? "POST" : "GET",
    target: post ? `${BASE}/${id}/sse` : `${BASE}/${id}/sse?${query}`,
    headers: [
      ["Accept", "text/event-stream"],
      ...(lastId === null ? [] : ([["Last-Event-ID", lastId]] as [string, HeaderValue][])),
      ...(post && type !== null ? ([["Content-Type", type]] as [string, HeaderValue][]) : []),
    ],
    body: post ? body : undefined,
    framing,
  }));

/** Publish: any JSON body, with the token, a wrong one, or none. */
const publishValue = (key: string) =>
  key === "data"
    ? fc.oneof({ weight: 2, arbitrary: jsonValueText }, { weight: 2, arbitrary: deepText(12_000) }, { weight: 1, arbitrary: longMultibyte(300_000).map((s) => JSON.stringify(s)) }, { weight: 1, arbitrary: numberText }, { weight: 1, arbitrary: valueText })
    : key === "channel"
      ? fc.oneof({ weight: 4, arbitrary: channelish.map((c) => JSON.stringify(c)) }, { weight: 1, arbitrary: valueText })
      : fc.oneof(valueText, fc.array(valueText, { maxLength: 4 }).map((a) => `[${a.join(",")}]`));
const publishBody: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.uniqueArray(fc.constantFrom("channel", "data", "channel", "data", "user_ids", "group_ids", "client_ids", "x", "__proto__"), { maxLength: 6 }).chain((keys) => fc.tuple(...keys.map((k) => publishValue(k).map((v) => `${JSON.stringify(k)}:${v}`))).map((es) => `{${es.join(",")}}`)) },
  // A channel that passes, so that the data itself is what is read: deep, huge, any JSON.
  { weight: 2, arbitrary: fc.tuple(fc.oneof(contractChannel, fc.constant("/a")), publishValue("data")).map(([c, d]) => `{"channel":${JSON.stringify(c)},"data":${d}}`) },
  { weight: 1, arbitrary: jsonBodyText },
);
const authorization: fc.Arbitrary<HeaderValue | null> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(`Bearer ${TOKEN}`) },
  { weight: 2, arbitrary: fc.constantFrom(null, "Bearer", "Bearer ", `bearer ${TOKEN}`, `Bearer ${TOKEN} `, `Bearer ${TOKEN}x`, "Basic Zm9vOmJhcg==", `Bearer  ${TOKEN}`) },
  { weight: 1, arbitrary: headerValue },
);
const publishRequest: fc.Arbitrary<RawRequest> = fc
  .record({ body: fc.oneof({ weight: 5, arbitrary: publishBody.map(utf8) }, { weight: 1, arbitrary: anyBody }), auth: authorization, type: fc.oneof(fc.constant("application/json"), contentType), framing })
  .map(({ body, auth, type, framing }) => ({
    method: "POST",
    target: `${BASE}/publish`,
    headers: [...(auth === null ? [] : ([["Authorization", auth]] as [string, HeaderValue][])), ...(type === null ? [] : ([["Content-Type", type]] as [string, HeaderValue][]))],
    body,
    framing,
  }));

/** Requests (docs/protocol.md#12-requests): any shape, ids, methods and data, single or batched. */
const requestValue = (key: string) =>
  key === "id"
    ? fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 1000 }).map(String) }, { weight: 2, arbitrary: numberText }, { weight: 1, arbitrary: valueText })
    : key === "method"
      ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom('"echo"', '"__publish"', '"nope"', '"__x"', '""') }, { weight: 2, arbitrary: longMultibyte(400).map((s) => JSON.stringify(s)) }, { weight: 1, arbitrary: valueText })
      : fc.oneof({ weight: 2, arbitrary: jsonValueText }, { weight: 1, arbitrary: deepText(12_000) }, { weight: 1, arbitrary: fc.constantFrom('{"channel":"/pub","data":1}', '{"channel":"/closed","data":1}', '{"channel":"bad"}') });
const oneRequest: fc.Arbitrary<string> = fc
  .uniqueArray(fc.constantFrom("id", "method", "data", "x"), { maxLength: 4 })
  .chain((keys) => fc.tuple(...keys.map((k) => requestValue(k).map((v) => `${JSON.stringify(k)}:${v}`))).map((es) => `{${es.join(",")}}`));
const requestBody: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: oneRequest },
  { weight: 2, arbitrary: fc.array(oneRequest, { maxLength: 40 }).map((rs) => `{"requests":[${rs.join(",")}]}`) },
  { weight: 1, arbitrary: oneRequest.map((r) => `{"request":${r}}`) },
  { weight: 1, arbitrary: fc.oneof(jsonBodyText, valueText).map((v) => `{"requests":${v}}`) },
  { weight: 1, arbitrary: jsonBodyText },
);
const requestRequest: fc.Arbitrary<RawRequest> = fc
  .record({ id: clientIdSegment, body: fc.oneof({ weight: 5, arbitrary: requestBody.map(utf8) }, { weight: 1, arbitrary: anyBody }), type: fc.oneof(fc.constant("application/json"), contentType), framing })
  .map(({ id, body, type, framing }) => ({
    method: "POST",
    target: `${BASE}/${id}/request`,
    headers: type === null ? [] : ([["Content-Type", type]] as [string, HeaderValue][]),
    body,
    framing,
  }));

/** stats, client.js, OPTIONS, unknown paths and odd methods (that Node's parser knows; HEAD has its own property). */
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "PROPPATCH", "SEARCH", "PURGE", "LOCK", "UNLOCK", "MKCOL", "COPY", "MOVE", "REPORT", "TRACE", "LINK", "QUERY"];
const otherTarget: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("stats", "client.js", "publish", "", "/", "stats/", "client.js?x=1", "STATS", "%73tats", "*", "stats%2F..", "./stats").map((p) => `${BASE}/${p}`),
  fc.tuple(clientIdSegment, fc.constantFrom("ws", "poll", "sse", "poll/x", "", "sse/", "WS", "poll;x")).map(([id, p]) => `${BASE}/${id}/${p}`),
  fc.array(anyString(10).map(percentEncode), { maxLength: 4 }).map((segs) => `${BASE}/${segs.join("/")}`),
  fc.constantFrom(BASE + "/", `${BASE}//stats`, `http://127.0.0.1${BASE}/stats`),
);
/** Paths outside `base`, which `listen` also serves. */
const outsideTarget: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("*", "*?x", "/", "/other", BASE, `${BASE}x/stats`, `//${BASE}/stats`, "/favicon.ico", "/message-bu", "/MESSAGE-BUS/stats", `${BASE}/../stats`, `${BASE}/%2e%2e/stats`),
  fc.array(anyString(10).map(percentEncode), { minLength: 1, maxLength: 3 }).map((segs) => `/${segs.join("/")}`),
);
const otherRequest = (targets: fc.Arbitrary<string>): fc.Arbitrary<RawRequest> => fc
  .record({ method: fc.constantFrom(...METHODS), target: targets, body: fc.option(anyBody, { freq: 2 }), type: contentType, framing })
  .map(({ method, target, body, type, framing }) => ({
    method,
    target,
    headers: type === null ? [] : ([["Content-Type", type]] as [string, HeaderValue][]),
    body: body ?? undefined,
    framing,
  }));

/** Any well-formed request of the above. */
const anyRequest: fc.Arbitrary<RawRequest> = fc.oneof(pollJsonRequest, pollOtherRequest, queryRequest, sseRequest, publishRequest, requestRequest, otherRequest(otherTarget));

const showRequest = (r: RawRequest) => `${r.method} ${brief(r.target, 200)} ${r.headers.map(([k, v]) => `${k}: ${brief(v, 60)}`).join("; ")} body=${r.body ? shown(r.body) : "none"} (${r.framing ?? "length"})`;
/**
 * Node answers a head over 16 KB with a bare 431 before cometbus sees it ("malformed request heads"
 * covers that): the other properties keep the target and each header under 8 KB. Counterexamples
 * print as the request, briefly.
 */
const HEAD_PART_MAX = 8000;
const cap = (v: HeaderValue): HeaderValue => (v.length <= HEAD_PART_MAX ? v : v.slice(0, HEAD_PART_MAX));
const printable = (arb: fc.Arbitrary<RawRequest>) =>
  arb.map((r) => {
    const req: RawRequest = { ...r, target: cap(r.target), headers: r.headers.map(([k, v]) => [k, cap(v)]) };
    return Object.assign(req, { [fc.toStringMethod]: () => showRequest(req) });
  });

function property(name: string, arb: fc.Arbitrary<RawRequest>, runs = 40) {
  it(name, () =>
    fuzz(
      FILE,
      name,
      fc.asyncProperty(printable(arb), async (req) => {
        await send([req]);
        await afterRun();
      }),
      { beforeEach: beforeRun, runs, runTimeout: 15_000 },
    ));
}

/** Requests of every kind in one write, answered in order. */
function pipelined(name: string) {
  it(name, () =>
    fuzz(
      FILE,
      name,
      fc.asyncProperty(fc.array(printable(anyRequest), { minLength: 2, maxLength: 5 }), async (reqs) => {
        await send(reqs);
        await afterRun();
      }),
      { beforeEach: beforeRun, runs: 30, runTimeout: 20_000 },
    ));
}

/** A request cut anywhere in its head or body, then closed or left open: no trace left. */
function truncated(name: string, arb: fc.Arbitrary<RawRequest>) {
  it(name, () =>
    fuzz(
      FILE,
      name,
      fc.asyncProperty(printable(arb), fc.nat(), fc.constantFrom(0, 0, 20, 120), async (req, at, openMs) => {
        const data = serialize(req);
        const cut = at % data.length;
        const ex = await exchange(data, [req.method], { cut: { at: cut, openMs } });
        // Nobody is left to read an answer; one may still come (an early 413, or Node's own bare
        // 400 for the cut, which "malformed request heads" holds to the contract): never a 5xx.
        const inHead = cut < data.indexOf("\r\n\r\n") + 4;
        for (const res of ex.responses) {
          if (res.status >= 500 && res.status !== 503) throw new Error(`cut at byte ${cut} of ${data.length}${inHead ? " (in the head)" : " (in the body)"}: status ${res.status} ${brief(res.body)}`);
        }
        // Let the server notice the connection is gone before asking it anything.
        await new Promise((r) => setTimeout(r, 20));
        await afterRun().catch((e: Error) => {
          throw new Error(`cut at byte ${cut} of ${data.length} (${openMs} ms open): ${e.message}`);
        });
      }),
      { beforeEach: beforeRun, runs: 40, runTimeout: 15_000 },
    ));
}

describe(`fuzz: HTTP endpoints (FUZZ_SEED=${process.env.FUZZ_SEED ?? "default"})`, () => {
  property("poll (dlp, long-poll, chunked): JSON subscriptions of any shape", pollJsonRequest);
  property("poll: form bodies, raw invalid UTF-8, any Content-Type and framing", pollOtherRequest);
  property("poll and sse: GET subscriptions in the query string", queryRequest);
  property("sse: GET query or POST body, any Last-Event-ID", sseRequest);
  property("publish: any JSON body, with and without the bearer token", publishRequest);
  property("request: any request or batch, ids, methods and data of any shape", requestRequest);
  property("stats, client.js, OPTIONS, unknown paths, odd methods", otherRequest(otherTarget));
  property("paths outside base (listen serves them too): JSON 404", otherRequest(outsideTarget), 30);
  property("HEAD on every endpoint (streams and held polls included)", anyRequest.map((r) => ({ ...r, method: "HEAD" })), 30);

  it("WebSocket upgrades with broken handshakes are answered with JSON errors", () =>
    fuzz(
      FILE,
      "WebSocket upgrades with broken handshakes are answered with JSON errors",
      fc.asyncProperty(
        fc.record({
          id: clientIdSegment,
          path: fc.constantFrom("ws", "ws", "ws", "ws", "poll", "sse", "stats", "x/ws"),
          upgrade: fc.oneof({ weight: 4, arbitrary: fc.constantFrom("websocket", "WebSocket") }, { weight: 1, arbitrary: fc.constantFrom("h2c", "", "websocket, foo") }, { weight: 1, arbitrary: headerValue }),
          key: fc.oneof(fc.constant("dGhlIHNhbXBsZSBub25jZQ=="), fc.constant(null), fc.constantFrom("", "short", "dGhlIHNhbXBsZSBub25jZQ"), headerValue),
          version: fc.oneof({ weight: 3, arbitrary: fc.constant("13") }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom("8", "14", "", "13, 8", "x") }),
          origin: fc.oneof(fc.constant(null), fc.constantFrom("http://127.0.0.1", "http://evil.example", "null", "not a url"), headerValue),
        }),
        async ({ id, path, upgrade, key, version, origin }) => {
          const headers: [string, HeaderValue][] = [["Connection", "Upgrade"], ["Upgrade", upgrade]];
          if (key !== null) headers.push(["Sec-WebSocket-Key", key]);
          if (version !== null) headers.push(["Sec-WebSocket-Version", version]);
          if (origin !== null) headers.push(["Origin", origin]);
          await send([{ method: "GET", target: `${BASE}/${id}/${path}`, headers }]);
          await afterRun();
        },
      ),
      { beforeEach: beforeRun, runs: 40, runTimeout: 15_000 },
    ));

  it("malformed request heads (raw bytes in the target, unknown methods, bad Content-Length) get a JSON 400", () =>
    fuzz(
      FILE,
      "malformed request heads (raw bytes in the target, unknown methods, bad Content-Length) get a JSON 400",
      fc.asyncProperty(
        fc.oneof(
          // RAW bytes in the query string and path: invalid UTF-8, valid UTF-8, controls.
          fc.tuple(validClientId, fc.constantFrom("poll?dlp=t&", "sse?", "poll?"), rawBytes.filter((b) => b.some((x) => x >= 0x80))).map(([id, p, raw]) => ({
            method: "GET",
            target: Buffer.concat([Buffer.from(`${BASE}/${id}/${p}`), Buffer.from(raw).filter((b) => b !== 0x20 && b !== 0x0d && b !== 0x0a)]),
            headers: [] as [string, HeaderValue][],
          })),
          fc.tuple(validClientId, fc.string({ unit: fc.constantFrom("é", "日", "😀", "\u00a0"), minLength: 1, maxLength: 4 })).map(([id, s]) => ({
            method: "GET",
            target: Buffer.from(`${BASE}/${id}/poll?dlp=t&/${s}=-1`, "utf8"),
            headers: [] as [string, HeaderValue][],
          })),
          // Over Node's 16 KB head limit: a long query, or a long Last-Event-ID.
          fc.tuple(validClientId, fc.integer({ min: 17_000, max: 40_000 }), fc.boolean()).map(([id, n, inQuery]) => ({
            method: "GET",
            target: `${BASE}/${id}/${inQuery ? `poll?dlp=t&/a=${"1".repeat(n)}` : "sse?/a=-1"}`,
            headers: (inQuery ? [] : [["Last-Event-ID", "e:" + "1,".repeat(n / 2)]]) as [string, HeaderValue][],
          })),
          fc.constantFrom("FOO", "GETS", "get", "BREW", "X-CUSTOM", "PRI").map((method) => ({ method, target: `${BASE}/stats`, headers: [] as [string, HeaderValue][] })),
          fc.constantFrom("abc", "-1", "1, 2", "0x10", "1e3", " ", "99999999999999999999").map((cl) => ({
            method: "POST",
            target: `${BASE}/c1/poll?dlp=t`,
            headers: [["Content-Length", cl]] as [string, HeaderValue][],
            body: utf8("/a=-1"),
          })),
        ),
        async (req: RawRequest) => {
          const ex = await exchange(serialize(req), [req.method]);
          const res = ex.responses[0];
          if (!res) throw new Error(`${showRequest(req)}: no answer (${ex.timedOut ? "timed out" : "closed"}${ex.garbage ? `, got ${ex.garbage}` : ""})`);
          const bad = badResponse(res, req.method);
          if (bad) throw new Error(`${showRequest(req)}: ${bad}`);
          if (res.status !== 400 && res.status !== 431) throw new Error(`${showRequest(req)}: status ${res.status}, expected 400 (or 431)`);
          await afterRun();
        },
      ),
      { beforeEach: beforeRun, runs: 30, runTimeout: 15_000 },
    ));

  it("a Content-Length that lies (shorter or longer than the body, or twice) gets proper answers or none", () =>
    fuzz(
      FILE,
      "a Content-Length that lies (shorter or longer than the body, or twice) gets proper answers or none",
      fc.asyncProperty(
        printable(fc.oneof(pollJsonRequest, pollOtherRequest, sseRequest, publishRequest)),
        fc.oneof(fc.integer({ min: -80, max: -1 }), fc.integer({ min: 1, max: 80 }), fc.constant(0)),
        fc.boolean(),
        async (req, delta, twice) => {
          const body = req.body ?? new Uint8Array(0);
          const length = Math.max(0, body.length + delta);
          const headers: [string, HeaderValue][] = [...req.headers, ["Content-Length", String(length)]];
          if (twice || delta === 0) headers.push(["Content-Length", String(length + 1 + (delta === 0 ? 0 : Math.abs(delta)))]);
          const lying: RawRequest = { ...req, headers, body, framing: "length" };
          // A shorter length leaves the rest of the body to be read as a next request: answer that too.
          const ex = await exchange(serialize(lying), [req.method, "GET", "GET"], { timeoutMs: 150 });
          for (const [i, res] of ex.responses.entries()) {
            const bad = res.status >= 500 && res.status !== 503 ? `status ${res.status} ${brief(res.body)}` : badResponse(res, i === 0 ? req.method : "GET");
            if (bad) throw new Error(`Content-Length ${headers.filter(([k]) => k === "Content-Length").map(([, v]) => v).join(" and ")} for ${body.length} bytes, answer ${i + 1}: ${bad}`);
          }
          await afterRun();
        },
      ),
      { beforeEach: beforeRun, runs: 25, runTimeout: 15_000 },
    ));

  pipelined("pipelined requests (SSE, long-poll, chunked, poll, publish in one write) are answered in order");

  truncated("truncated requests (cut in the head or the body, then closed or left open) leave no trace", anyRequest);

  it("every contract channel can be subscribed to (JSON, form, query, SSE) and published to", () =>
    fuzz(
      FILE,
      "every contract channel can be subscribed to (JSON, form, query, SSE) and published to",
      fc.asyncProperty(contractChannel.filter((c) => c !== REFUSED), fc.constantFrom("json", "form", "query", "sse", "publish"), async (channel, form) => {
        const id = "contract";
        if (form === "sse") {
          const ex = await send([{ method: "GET", target: `${BASE}/${id}/sse?${percentEncode(channel)}=-1`, headers: [] }]);
          const res = ex.responses[0];
          if (res.status !== 200 || !res.stream) throw new Error(`SSE on ${brief(channel)}: ${res.status} ${brief(res.body)}`);
          return afterRun();
        }
        if (form === "publish") {
          if (channel.startsWith("/__")) return afterRun();
          const ex = await send([{ method: "POST", target: `${BASE}/publish`, headers: [["Authorization", `Bearer ${TOKEN}`], ["Content-Type", "application/json"]], body: utf8(JSON.stringify({ channel, data: "hello" })) }]);
          const res = ex.responses[0];
          if (res.status !== 200) throw new Error(`publish to ${brief(channel)}: ${res.status} ${brief(res.body)}`);
          const { message_id } = JSON.parse(res.body.toString("utf8")) as { message_id: number };
          const back = await send([{ method: "POST", target: `${BASE}/${id}/poll?dlp=t`, headers: [["Content-Type", "application/json"]], body: utf8(JSON.stringify({ [channel]: message_id - 1 })) }]);
          const got = JSON.parse(back.responses[0].body.toString("utf8")) as { channel: string; data: unknown }[];
          if (!got.some((m) => m.channel === channel && m.data === "hello")) throw new Error(`published to ${brief(channel)}, the poll got ${brief(back.responses[0].body)}`);
          return afterRun();
        }
        const req: RawRequest =
          form === "json"
            ? { method: "POST", target: `${BASE}/${id}/poll?dlp=t`, headers: [["Content-Type", "application/json"]], body: utf8(JSON.stringify({ [channel]: -1 })) }
            : form === "form"
              ? { method: "POST", target: `${BASE}/${id}/poll?dlp=t`, headers: [["Content-Type", "application/x-www-form-urlencoded"]], body: utf8(`${percentEncode(channel)}=-1`) }
              : { method: "GET", target: `${BASE}/${id}/poll?dlp=t&${percentEncode(channel)}=-1`, headers: [] };
        const ex = await send([req]);
        const res = ex.responses[0];
        const text = res.body.toString("utf8");
        if (res.status !== 200) throw new Error(`subscribing (${form}) to ${brief(channel)}: ${res.status} ${brief(text)}`);
        const got = JSON.parse(text) as { channel: string; data: Record<string, unknown> }[];
        if (!got.some((m) => m.channel === "/__status" && channel in m.data)) throw new Error(`subscribing (${form}) to ${brief(channel)}: no status for it in ${brief(text)}`);
        await afterRun();
      }),
      { beforeEach: beforeRun, runs: 40, runTimeout: 15_000 },
    ));

  /** Requests whose error echoes input: long non-ASCII keys, values, channels; lone surrogates. */
  const echoRequest: fc.Arbitrary<RawRequest> = fc
    .record({
      where: fc.constantFrom("key", "value", "seq", "epoch", "nested", "form-key", "form-value", "query", "sse", "publish", "refused"),
      long: fc.oneof(longMultibyte(8_000, 100), fc.tuple(fc.string({ unit: loneSurrogate, minLength: 1, maxLength: 3 }), longMultibyte(400)).map(([a, b]) => "/" + b + a), anyString(40), stringText.map((t) => JSON.parse(t) as string)),
      id: validClientId,
    })
    .map(({ where, long, id }): RawRequest => {
      const json = (o: Record<string, unknown>): RawRequest => ({ method: "POST", target: `${BASE}/${id}/poll?dlp=t`, headers: [["Content-Type", "application/json"]], body: utf8(JSON.stringify(o)) });
      const form = (t: string): RawRequest => ({ method: "POST", target: `${BASE}/${id}/poll?dlp=t`, headers: [["Content-Type", "application/x-www-form-urlencoded"]], body: utf8(t) });
      switch (where) {
        case "key": return json({ ["/" + long]: -1 });
        case "value": return json({ "/a": long });
        case "seq": return json({ "/a": -1, __seq: long });
        case "epoch": return json({ "/a": -1, __epoch: long });
        case "nested": return json({ [long]: { x: 1 } });
        case "form-key": return form(`${percentEncode("/" + long)}=-1`);
        case "form-value": return form(`/a=${percentEncode(long)}`);
        case "query": return { method: "GET", target: `${BASE}/${id}/poll?dlp=t&${percentEncode("/" + long)}=${percentEncode(long)}`, headers: [] };
        case "sse": return { method: "GET", target: `${BASE}/${id}/sse?${percentEncode("/" + long)}=-1`, headers: [] };
        case "publish": return { method: "POST", target: `${BASE}/publish`, headers: [["Authorization", `Bearer ${TOKEN}`], ["Content-Type", "application/json"]], body: utf8(JSON.stringify({ channel: "/" + long, data: 1 })) };
        default: return json({ [REFUSED]: -1, "/a": -1 });
      }
    });

  it("4xx error messages that echo input are short, valid UTF-8 without lone surrogates", () =>
    fuzz(
      FILE,
      "4xx error messages that echo input are short, valid UTF-8 without lone surrogates",
      fc.asyncProperty(printable(echoRequest), async (req) => {
        const ex = await send([req]);
        const message = ex.responses[0] && errorMessage(ex.responses[0]);
        if (message !== undefined) {
          const bad = badMessage(message);
          if (bad) throw new Error(`${ex.responses[0].status} error message ${bad}`);
        }
        await afterRun();
      }),
      { beforeEach: beforeRun, runs: 40, runTimeout: 15_000 },
    ));

  it("the fuzz reached the handlers: 200s and 400s were both answered", () => {
    const seen = Object.fromEntries(statuses);
    if (!(statuses.get(200)! > 0 && statuses.get(400)! > 0)) throw new Error(`statuses seen: ${JSON.stringify(seen)}`);
    process.stdout.write(`fuzz ${FILE}: statuses seen ${JSON.stringify(seen)}\n`);
  });
});

/** An answer as compared between the direct path and Hono: all but the clock and the spread's value. */
function comparable(res: RawResponse) {
  const headers = [...res.headers].filter(([k]) => k !== "date" && k !== "x-cometbus-spread").sort(([a], [b]) => (a < b ? -1 : 1));
  return { status: res.status, headers: Object.fromEntries(headers), spread: res.headers.has("x-cometbus-spread"), body: res.body.toString("latin1"), stream: res.stream };
}

describe(`fuzz: polls answered straight from node:http (FUZZ_SEED=${process.env.FUZZ_SEED ?? "default"})`, () => {
  beforeAll(() => {
    server = direct;
  });
  afterAll(() => {
    server = routed;
  });

  const pollRequest = fc.oneof(pollJsonRequest, pollOtherRequest, queryRequest);
  property("poll (dlp, long-poll, chunked), direct: JSON subscriptions of any shape", pollJsonRequest);
  property("poll, direct: form bodies, raw invalid UTF-8, any Content-Type and framing", pollOtherRequest);
  property("poll, direct: GET subscriptions in the query string", queryRequest, 30);

  it("direct answers are the routes' answers: status, headers and body, pipelined too", () =>
    fuzz(
      FILE,
      "direct answers are the routes' answers: status, headers and body, pipelined too",
      fc.asyncProperty(fc.array(printable(pollRequest), { minLength: 1, maxLength: 4 }), async (reqs) => {
        const straight = await send(reqs);
        await new Promise((r) => setTimeout(r, 5));
        const methods = reqs.map((r) => r.method);
        const through = await exchange(Buffer.concat(reqs.map(serialize)), methods, { port: twin.port });
        const a = straight.responses.map(comparable);
        const b = through.responses.map(comparable);
        if (JSON.stringify(a) !== JSON.stringify(b)) {
          throw new Error(`direct and through Hono differ:\n  direct ${JSON.stringify(a).slice(0, 1500)}\n  hono   ${JSON.stringify(b).slice(0, 1500)}`);
        }
        await afterRun();
      }),
      { beforeEach: beforeRun, runs: 40, runTimeout: 20_000 },
    ));

  pipelined("pipelined requests on the direct server are answered in order");

  truncated("truncated polls on the direct server leave no trace", pollRequest);
});
