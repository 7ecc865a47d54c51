import { createParser } from "eventsource-parser";
import fc from "fast-check";
import { describe, it } from "vitest";
import { checkChannel, checkClientId, checkPublishChannel, parsePosition } from "../src/channel.js";
import { ProtocolError } from "../src/errors.js";
import { DEFAULT_LIMITS } from "../src/limits.js";
import { parseSubscription, type Subscription, type SubscriptionLimits } from "../src/subscription.js";
import { decodeChunks, encodeChunk, SSE_HEARTBEAT, SSE_PREAMBLE, sseEvent, sseId, parseSseId } from "../src/wire.js";
import {
  anyChar,
  anyString,
  badChannel,
  badMessage,
  brief,
  channelish,
  CLIENT_ID,
  clientIdSegment,
  contractChannel,
  deepText,
  shown,
  formText,
  fuzz,
  hugeString,
  isContractChannel,
  jsonBodyText,
  jsonValueText,
  lastEventId,
  longMultibyte,
  MAX_CHANNEL_BYTES,
  stringText,
  valueText,
} from "./helpers/fuzz-arbitraries.js";

/**
 * The protocol's pure parsers under property-based fuzzing, no server: each returns a well-formed
 * result or throws a ProtocolError (never another error, never a hang), and every error message is
 * valid UTF-16 of at most MAX_ERROR_BYTES UTF-8 bytes, however large the input.
 */
const FILE = "test/fuzz-protocol.test.ts";

/** A parser call on megabytes may take this long on a busy machine; longer is a hang. */
const HANG_MS = 2000;

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function run<T>(what: string, f: () => T): Outcome<T> {
  const t0 = performance.now();
  let out: Outcome<T>;
  try {
    out = { ok: true, value: f() };
  } catch (error) {
    out = { ok: false, error };
  }
  const ms = performance.now() - t0;
  if (ms > HANG_MS) throw new Error(`${what} took ${Math.round(ms)} ms`);
  return out;
}

const STATUSES = new Set([400, 403, 404, 413, 426, 429]);
const CLOSE_CODES = new Set([1007, 1008, 1009, 1013]);

/** The error is a ProtocolError with a status and close code of the contract. */
function protocolError(what: () => string, error: unknown): ProtocolError {
  if (!(error instanceof ProtocolError)) {
    const e = error as Error;
    throw new Error(`${what()} threw ${e?.constructor?.name ?? typeof e} (not a ProtocolError): ${String(e?.message ?? e).slice(0, 200)}`, { cause: error });
  }
  if (!STATUSES.has(error.status)) throw new Error(`${what()}: ProtocolError with status ${error.status}`);
  if (!CLOSE_CODES.has(error.closeCode)) throw new Error(`${what()}: ProtocolError with close code ${error.closeCode}`);
  return error;
}

/** ...and its message is short, well-formed UTF-16. */
function shortMessage(what: () => string, error: unknown): void {
  const bad = badMessage(protocolError(what, error).message);
  if (bad) throw new Error(`${what()}: error message ${bad}`);
}

function wellFormedSubscription(what: () => string, sub: Subscription, limits: SubscriptionLimits): void {
  if (!(sub.positions instanceof Map)) throw new Error(`${what()}: positions is not a Map`);
  if (sub.positions.size > limits.maxChannels) throw new Error(`${what()}: ${sub.positions.size} channels > ${limits.maxChannels}`);
  for (const [ch, p] of sub.positions) {
    if (!isContractChannel(ch, limits.maxChannelBytes)) throw new Error(`${what()}: took the channel ${brief(ch)}, which the contract refuses`);
    if (!Number.isSafeInteger(p)) throw new Error(`${what()}: position ${p} of ${brief(ch)} is not a safe integer`);
  }
  if (sub.seq !== undefined && !Number.isSafeInteger(sub.seq)) throw new Error(`${what()}: __seq ${sub.seq} is not a safe integer`);
  if (sub.epoch !== undefined && (typeof sub.epoch !== "string" || sub.epoch.length > 64)) throw new Error(`${what()}: bad __epoch ${brief(String(sub.epoch))}`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const limitsArb: fc.Arbitrary<SubscriptionLimits> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(DEFAULT_LIMITS) },
  { weight: 1, arbitrary: fc.record({ maxChannels: fc.integer({ min: 1, max: 120 }), maxChannelBytes: fc.integer({ min: 1, max: 300 }) }) },
);

/** Values a JSON body can hold (anything JSON.parse makes), as values. */
const jsonValue: fc.Arbitrary<unknown> = fc.oneof(
  valueText.map(parseJson),
  jsonValueText.map(parseJson),
  fc.constantFrom(undefined, null, NaN, Infinity, -0, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 1, 0.5),
);

/** Inputs whose echo in an error message would be megabytes: huge keys and values, at every place. */
const echoBait: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  hugeString.map((s) => ({ [s]: -1 })),
  hugeString.map((s) => ({ ["/" + s]: -1 })),
  hugeString.map((s) => ({ "/a": s })),
  hugeString.map((s) => ({ [s]: { x: 1 } })),
  hugeString.map((s) => ({ __seq: s })),
  hugeString.map((s) => ({ __epoch: s })),
  fc.tuple(longMultibyte(4096), channelish).map(([s, ch]) => ({ [ch]: s })),
  fc.tuple(longMultibyte(4096), valueText).map(([s, v]) => ({ ["/" + s]: parseJson(v) })),
  fc.tuple(badChannel, jsonValue).map(([ch, v]) => ({ [ch]: v })),
  deepText(12_000).map((t) => ({ __seq: parseJson(t) })),
  deepText(12_000).map((t) => ({ "/a": parseJson(t) })),
);

describe(`fuzz: protocol parsers (FUZZ_SEED=${process.env.FUZZ_SEED ?? "default"})`, () => {
  it("checkChannel accepts exactly the contract's channels", () =>
    fuzz(
      FILE,
      "checkChannel accepts exactly the contract's channels",
      fc.property(fc.oneof(contractChannel, badChannel, channelish), fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }), (ch, max) => {
        const limit = max ?? MAX_CHANNEL_BYTES;
        const expected = isContractChannel(ch, limit);
        const got = run("checkChannel", () => checkChannel(ch, max));
        if (got.ok !== expected) {
          throw new Error(`checkChannel(${brief(ch)}, ${limit}) ${got.ok ? "accepted" : "refused"} it; the contract ${expected ? "accepts" : "refuses"} it`);
        }
        if (got.ok && got.value !== ch) throw new Error(`checkChannel returned ${brief(got.value)} for ${brief(ch)}`);
        if (!got.ok) protocolError(() => "checkChannel", got.error);
        // Publishing: the same, minus the reserved "/__" channels.
        const pub = run("checkPublishChannel", () => checkPublishChannel(ch, max));
        if (pub.ok !== (expected && !ch.startsWith("/__"))) {
          throw new Error(`checkPublishChannel(${brief(ch)}) ${pub.ok ? "accepted" : "refused"} it`);
        }
        if (!pub.ok) protocolError(() => "checkPublishChannel", pub.error);
      }),
      { runs: 400 },
    ));

  it("checkChannel throws short ProtocolErrors, whatever it is given", () =>
    fuzz(
      FILE,
      "checkChannel throws short ProtocolErrors, whatever it is given",
      fc.property(fc.oneof(badChannel, hugeString, hugeString.map((s) => "/" + s), jsonValue, anyString()), (ch) => {
        const got = run("checkChannel", () => checkChannel(ch));
        if (!got.ok) shortMessage(() => `checkChannel(${shown(ch)})`, got.error);
        const pub = run("checkPublishChannel", () => checkPublishChannel(ch));
        if (!pub.ok) shortMessage(() => `checkPublishChannel(${shown(ch)})`, pub.error);
      }),
      { runs: 200 },
    ));

  it("checkClientId takes exactly 1-64 of [A-Za-z0-9_-]", () =>
    fuzz(
      FILE,
      "checkClientId takes exactly 1-64 of [A-Za-z0-9_-]",
      fc.property(fc.oneof(clientIdSegment, anyString(70), hugeString, jsonValue), (id) => {
        const expected = typeof id === "string" && CLIENT_ID.test(id);
        const got = run("checkClientId", () => checkClientId(id));
        if (got.ok !== expected) throw new Error(`checkClientId(${shown(id)}) ${got.ok ? "accepted" : "refused"} it`);
        if (got.ok && got.value !== id) throw new Error("checkClientId changed the id");
        if (!got.ok) shortMessage(() => `checkClientId(${shown(id)})`, got.error);
      }),
      { runs: 300 },
    ));

  it("parsePosition returns a safe integer or throws a ProtocolError", () =>
    fuzz(
      FILE,
      "parsePosition returns a safe integer or throws a ProtocolError",
      fc.property(fc.oneof(jsonValue, stringText.map(parseJson)), contractChannel, (value, ch) => {
        const got = run("parsePosition", () => parsePosition(value, ch));
        if (!got.ok) return void protocolError(() => `parsePosition(${shown(value)})`, got.error);
        const p = got.value;
        if (!Number.isSafeInteger(p)) throw new Error(`parsePosition(${shown(value)}) = ${p}, not a safe integer`);
        if (value === "" || value === null || value === undefined) {
          if (p !== -1) throw new Error(`parsePosition(${JSON.stringify(value)}) = ${p}, expected -1 (from now)`);
        } else if (typeof value === "number") {
          if (p !== value) throw new Error(`parsePosition(${value}) = ${p}`);
        } else if (typeof value === "string") {
          if (!/^-?\d+$/.test(value) || p !== Number(value)) throw new Error(`parsePosition(${brief(value)}) = ${p}`);
        } else throw new Error(`parsePosition took a ${typeof value}: ${shown(value)}`);
      }),
      { runs: 400 },
    ));

  it("parsePosition's errors are short, even for megabytes and deep nesting", () =>
    fuzz(
      FILE,
      "parsePosition's errors are short, even for megabytes and deep nesting",
      fc.property(fc.oneof(hugeString, longMultibyte(100_000), deepText(12_000).map(parseJson), jsonValue), fc.oneof(contractChannel, fc.constant("/a")), (value, ch) => {
        const got = run("parsePosition", () => parsePosition(value, ch));
        if (!got.ok) shortMessage(() => `parsePosition(${shown(value)}, ${brief(ch)})`, got.error);
      }),
      { runs: 150 },
    ));

  it("parseSubscription(JSON) returns a well-formed subscription or throws a ProtocolError", () =>
    fuzz(
      FILE,
      "parseSubscription(JSON) returns a well-formed subscription or throws a ProtocolError",
      fc.property(fc.oneof(jsonBodyText.map(parseJson), echoBait), limitsArb, (body, limits) => {
        const got = run("parseSubscription", () => parseSubscription(body, { limits }));
        const what = () => `parseSubscription(${shown(body)})`;
        if (got.ok) wellFormedSubscription(what, got.value, limits);
        else protocolError(what, got.error);
      }),
      { runs: 300 },
    ));

  it("parseSubscription(JSON)'s errors are short and well-formed", () =>
    fuzz(
      FILE,
      "parseSubscription(JSON)'s errors are short and well-formed",
      fc.property(fc.oneof(echoBait, jsonBodyText.map(parseJson)), (body) => {
        const got = run("parseSubscription", () => parseSubscription(body));
        if (!got.ok) shortMessage(() => `parseSubscription(${shown(body)})`, got.error);
      }),
      { runs: 200 },
    ));

  const params: fc.Arbitrary<URLSearchParams> = fc.oneof(
    { weight: 4, arbitrary: formText.map((t) => new URLSearchParams(t)) },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.tuple(fc.oneof(channelish, fc.constantFrom("__seq", "__epoch", "dlp", "_")), fc.oneof(valueText, stringText.map((t) => JSON.parse(t) as string))), { maxLength: 6 })
        .map((pairs) => new URLSearchParams(pairs)),
    },
    { weight: 1, arbitrary: fc.tuple(hugeString, fc.constantFrom("key", "value", "seq", "epoch")).map(([s, where]) => new URLSearchParams(where === "key" ? [[s, "1"]] : [[where === "seq" ? "__seq" : where === "epoch" ? "__epoch" : "/a", s]])) },
    { weight: 1, arbitrary: fc.integer({ min: 95, max: 130 }).map((n) => new URLSearchParams(Array.from({ length: n }, (_, i) => [`/m${i}`, "-1"]))) },
  );
  const show = (p: URLSearchParams) => brief(p.toString());

  it("parseSubscription(URLSearchParams), lenient or not, returns a well-formed subscription or throws a ProtocolError", () =>
    fuzz(
      FILE,
      "parseSubscription(URLSearchParams), lenient or not, returns a well-formed subscription or throws a ProtocolError",
      fc.property(params, fc.boolean(), limitsArb, (input, lenient, limits) => {
        const got = run("parseSubscription", () => parseSubscription(input, { lenient, limits }));
        const what = () => `parseSubscription(${show(input)}, {lenient: ${lenient}})`;
        if (!got.ok) return void protocolError(what, got.error);
        wellFormedSubscription(what, got.value, limits);
        // Lenient (a query string) passes over keys that are not channels; strict takes none of them.
        for (const [key] of input) {
          if (key === "__seq" || key === "__epoch" || got.value.positions.has(key)) continue;
          if (!lenient || key.startsWith("/")) throw new Error(`${what()} dropped the key ${brief(key)} without an error`);
        }
      }),
      { runs: 300 },
    ));

  it("parseSubscription(URLSearchParams)'s errors are short and well-formed", () =>
    fuzz(
      FILE,
      "parseSubscription(URLSearchParams)'s errors are short and well-formed",
      fc.property(params, fc.boolean(), (input, lenient) => {
        const got = run("parseSubscription", () => parseSubscription(input, { lenient }));
        if (!got.ok) shortMessage(() => `parseSubscription(${show(input)}, {lenient: ${lenient}})`, got.error);
      }),
      { runs: 200 },
    ));

  it("parseSubscription takes every contract channel, as JSON and as pairs", () =>
    fuzz(
      FILE,
      "parseSubscription takes every contract channel, as JSON and as pairs",
      fc.property(contractChannel, fc.integer({ min: -5, max: 1_000_000 }), fc.constantFrom("json", "pairs", "lenient"), (ch, pos, form) => {
        const input = form === "json" ? { [ch]: pos } : new URLSearchParams([[ch, String(pos)]]);
        const got = run("parseSubscription", () => parseSubscription(input, { lenient: form === "lenient" }));
        if (!got.ok) throw new Error(`parseSubscription (${form}) refused the contract channel ${brief(ch)}: ${(got.error as Error).message}`);
        if (got.value.positions.get(ch) !== pos) throw new Error(`parseSubscription (${form}) lost ${brief(ch)}`);
      }),
      { runs: 200 },
    ));

  it("parseSseId returns null or every channel's safe position, never throws", () =>
    fuzz(
      FILE,
      "parseSseId returns null or every channel's safe position, never throws",
      fc.property(
        fc.oneof(
          lastEventId.map((v) => (typeof v === "string" ? v.replace("{epoch}", "e1") : Buffer.from(v).toString("latin1"))),
          anyString(40),
          hugeString,
          fc.constantFrom(null, undefined, "", ":", "e:", ":1", "e:1,", "e:,1", "e:1,,2", "e:-1", "e:1e3", "e:0x10", "e: 1", "e:1.5", "a:b:1"),
        ),
        fc.integer({ min: 0, max: 6 }),
        (id, channels) => {
          const got = run("parseSseId", () => parseSseId(id, channels));
          if (!got.ok) throw new Error(`parseSseId(${shown(id)}, ${channels}) threw ${String(got.error)}`);
          const r = got.value;
          if (r === null) return;
          if (typeof r.epoch !== "string" || r.epoch === "" || r.epoch.includes(":")) throw new Error(`parseSseId: epoch ${brief(String(r.epoch))}`);
          if (r.positions.length !== channels) throw new Error(`parseSseId: ${r.positions.length} positions for ${channels} channels`);
          for (const p of r.positions) if (!Number.isSafeInteger(p) || p < 0) throw new Error(`parseSseId(${shown(id)}): position ${p}`);
        },
      ),
      { runs: 300 },
    ));

  const epochArb = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789-_,.".split("")), minLength: 1, maxLength: 20 });

  it("sseId and parseSseId round-trip", () =>
    fuzz(
      FILE,
      "sseId and parseSseId round-trip",
      fc.property(epochArb, fc.array(fc.maxSafeNat(), { maxLength: 8 }), (epoch, positions) => {
        const id = sseId(epoch, positions);
        const back = parseSseId(id, positions.length);
        if (!back || back.epoch !== epoch || back.positions.join() !== positions.join()) {
          throw new Error(`parseSseId(sseId(${epoch}, [${positions}])) = ${JSON.stringify(back)}`);
        }
      }),
      { runs: 300 },
    ));

  /** JSON texts as the server writes them, and with CR/LF whitespace (still JSON). */
  const jsonText = fc.oneof(
    jsonValueText,
    fc.jsonValue({ maxDepth: 3, stringUnit: anyChar }).map((v) => JSON.stringify(v, null, "\r\n")),
    fc.jsonValue({ maxDepth: 3, stringUnit: anyChar }).map((v) => JSON.stringify([{ global_id: 1, message_id: 1, channel: "/a", data: v }])),
    fc.constantFrom("[]", '"\\r\\n|\\r\\n"', '["\\r\\n||\\r\\n"]', "[\r\n]", "\r\n[1]\r\n", "1\r\n"),
  );

  /** `s` cut at the given points (taken modulo its length). */
  function cut(s: string, points: number[]): string[] {
    const at = [...new Set(points.map((p) => p % (s.length + 1)))].sort((a, b) => a - b);
    const out: string[] = [];
    let prev = 0;
    for (const p of at) {
      out.push(s.slice(prev, p));
      prev = p;
    }
    out.push(s.slice(prev));
    return out;
  }

  it("encodeChunk/decodeChunks round-trip any JSON texts, however the stream is cut", () =>
    fuzz(
      FILE,
      "encodeChunk/decodeChunks round-trip any JSON texts, however the stream is cut",
      fc.property(fc.array(jsonText, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 10 }), (texts, points) => {
        const one = run("decodeChunks", () => decodeChunks(encodeChunk(texts[0])));
        if (!one.ok) throw one.error;
        if (one.value.rest !== "" || one.value.chunks.length !== 1 || one.value.chunks[0] !== texts[0]) {
          throw new Error(`decodeChunks(encodeChunk(${brief(texts[0])})) = ${brief(JSON.stringify(one.value))}`);
        }
        const stream = texts.map(encodeChunk).join("");
        const got: string[] = [];
        let buffer = "";
        for (const piece of cut(stream, points)) {
          const d = decodeChunks(buffer + piece);
          got.push(...d.chunks);
          buffer = d.rest;
        }
        if (buffer !== "") throw new Error(`left over: ${brief(buffer)}`);
        if (got.length !== texts.length || got.some((t, i) => t !== texts[i])) {
          throw new Error(`decoded ${brief(JSON.stringify(got))}, sent ${brief(JSON.stringify(texts))}`);
        }
      }),
      { runs: 300 },
    ));

  it("sseEvent reads back exactly, in a stream cut anywhere", () =>
    fuzz(
      FILE,
      "sseEvent reads back exactly, in a stream cut anywhere",
      fc.property(
        fc.array(fc.tuple(epochArb, fc.array(fc.maxSafeNat(), { maxLength: 4 }), jsonValueText), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (events, points) => {
          const sent = events.map(([epoch, positions, json]) => ({ id: sseId(epoch, positions), data: json }));
          const stream = SSE_PREAMBLE + sent.map((e, i) => (i % 2 ? SSE_HEARTBEAT : "") + sseEvent(e.id, e.data)).join("");
          const got: { id?: string; data: string }[] = [];
          const parser = createParser({ onEvent: (e) => got.push({ id: e.id, data: e.data }) });
          for (const piece of cut(stream, points)) parser.feed(piece);
          if (got.length !== sent.length || got.some((e, i) => e.id !== sent[i].id || e.data !== sent[i].data)) {
            throw new Error(`read ${brief(JSON.stringify(got))}, sent ${brief(JSON.stringify(sent))}`);
          }
          for (const e of got) JSON.parse(e.data);
        },
      ),
      { runs: 300 },
    ));
});
