/**
 * Shared pieces of the property-based fuzz suites (test/fuzz-*.test.ts): the run configuration
 * (seed, runs, time budget, the one line printed per property), the contract's oracles, and the
 * generators of hostile input. Every generator shrinks: a failure is reported as a small input.
 *
 * FUZZ_SEED     the seed of every property (default 20261122); a failure prints the one to replay
 * FUZZ_RUNS     runs of every property (default: each property's own, small enough for npm test)
 * FUZZ_TIME_LIMIT  ms a property may take, runs and shrinking together (default without FUZZ_RUNS:
 *               2500, or the property's own `timeLimit`; none with FUZZ_RUNS; 0 = none). An
 *               interrupted passing property prints how many runs it made; an interrupted failing
 *               one reports what it had shrunk to.
 * FUZZ_REPORT   a file to append one JSON line per property to (scripts/fuzz.mjs reads it)
 */
import { appendFileSync } from "node:fs";
import fc from "fast-check";

// ---- configuration ----------------------------------------------------------------------------

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

export const FUZZ_SEED = envInt("FUZZ_SEED") ?? 20261122;
const RUNS = envInt("FUZZ_RUNS");
const TIME_LIMIT_SET = envInt("FUZZ_TIME_LIMIT") !== undefined;
const TIME_LIMIT = envInt("FUZZ_TIME_LIMIT") ?? (RUNS === undefined ? 2500 : 0);

/** The runs a property makes: FUZZ_RUNS if set, else its own default. */
export function fuzzRuns(defaultRuns: number): number {
  return RUNS !== undefined && RUNS > 0 ? RUNS : defaultRuns;
}

export interface FuzzOptions {
  /** Runs without FUZZ_RUNS. */
  runs: number;
  /** An async run that takes longer than this (ms) fails: a hang becomes a counterexample. */
  runTimeout?: number;
  /** This property's own budget (ms) when FUZZ_TIME_LIMIT is not set and FUZZ_RUNS is not either. */
  timeLimit?: number;
  /** Called before every run of an async property (shrinking runs included). */
  beforeEach?: () => void;
}

/**
 * fc.assert with the suite's seed and runs; prints one line (property, seed, runs, shrinks, outcome,
 * time, how to replay) and appends it to FUZZ_REPORT. Throws fast-check's own report on failure.
 */
export async function fuzz<Ts>(
  file: string,
  name: string,
  property: fc.IRawProperty<Ts>,
  { runs, runTimeout, timeLimit, beforeEach }: FuzzOptions,
): Promise<void> {
  if (beforeEach && property.isAsync()) {
    property = (property as fc.IAsyncPropertyWithHooks<Ts>).beforeEach(async (previous) => {
      await previous();
      beforeEach();
    });
  }
  const numRuns = fuzzRuns(runs);
  const plugins: fc.UniversalPlugin[] = [];
  const limit = TIME_LIMIT_SET || RUNS !== undefined ? TIME_LIMIT : (timeLimit ?? TIME_LIMIT);
  if (limit > 0) plugins.push(fc.interruptAfterTimeLimit(limit));
  if (runTimeout && property.isAsync()) plugins.push(fc.timeout(runTimeout));
  let details: fc.RunDetails<unknown> | undefined;
  const started = performance.now();
  try {
    await fc.assert(property as fc.IAsyncProperty<Ts>, {
      seed: FUZZ_SEED,
      numRuns,
      plugins,
      includeErrorInReport: true,
      reporter: (d) => {
        details = d;
        if (d.failed) throw new Error(report(d), { cause: d.errorInstance });
      },
    });
  } finally {
    const ms = Math.round(performance.now() - started);
    const d = details;
    const outcome = !d ? "ERROR" : d.failed ? "FAILED" : d.interrupted ? "passed (interrupted by the time limit)" : "passed";
    const made = d ? d.numRuns : 0;
    const shrinks = d && d.failed ? ` shrinks=${d.numShrinks}` : "";
    process.stdout.write(
      `fuzz ${file} › ${name}: seed=${FUZZ_SEED} runs=${made}/${numRuns}${shrinks} ${outcome} ${ms}ms` +
        ` (replay: FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${numRuns} npx vitest run ${file} -t ${JSON.stringify(name)})\n`,
    );
    const report = process.env.FUZZ_REPORT;
    if (report) {
      appendFileSync(
        report,
        JSON.stringify({ file, name, seed: FUZZ_SEED, runs: made, requested: numRuns, failed: !d || d.failed, interrupted: d?.interrupted ?? false, shrinks: d?.numShrinks ?? 0, ms }) + "\n",
      );
    }
  }
}

/**
 * fast-check's report, with counterexamples shown briefly: its own stringify recurses (nesting
 * thousands deep overflows the stack) and prints megabyte strings whole.
 */
function report(d: fc.RunDetails<unknown>): string {
  const head = `Property failed after ${d.numRuns} tests\n{ seed: ${d.seed}, path: ${JSON.stringify(d.counterexamplePath)}, endOnFailure: true }`;
  if (d.counterexample === null) return `${head}\n${d.interrupted ? "Interrupted before any failure was shrunk" : "Too many skips"}\n${String(d.errorInstance ?? "")}`;
  const args = (d.counterexample as unknown[]).map((v) => shown(v)).join(",\n  ");
  const error = d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance);
  return `${head}\nCounterexample: [\n  ${args}\n]\nShrunk ${d.numShrinks} time(s)\nGot error: ${error}`;
}

/** A value for a failure report: strings and bytes cut short, nesting and long lists elided. */
export function shown(v: unknown, depth = 0): string {
  if (typeof v === "string") return brief(v, 200);
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (typeof v === "bigint") return `${v}n`;
  if (v === null || typeof v !== "object") return String(v);
  if (v instanceof Uint8Array) {
    const hex = Buffer.from(v.subarray(0, 80)).toString("hex").replace(/(..)/g, "$1 ").trim();
    return `bytes[${v.length}](${hex}${v.length > 80 ? " …" : ""}) ${brief(v, 80)}`;
  }
  if (v instanceof URLSearchParams) return `URLSearchParams(${brief(v.toString(), 200)})`;
  const custom = (v as { [fc.toStringMethod]?: () => string })[fc.toStringMethod];
  if (typeof custom === "function") return custom.call(v);
  if (depth >= 4) return `${Array.isArray(v) ? "[…]" : "{…}"} (${nesting(v)} levels deep)`;
  if (Array.isArray(v)) {
    const items = v.slice(0, 8).map((x) => shown(x, depth + 1));
    return `[${items.join(", ")}${v.length > 8 ? `, … (${v.length} items)` : ""}]`;
  }
  const entries = Object.entries(v);
  const items = entries.slice(0, 8).map(([k, x]) => `${brief(k, 60)}: ${shown(x, depth + 1)}`);
  return `{${items.join(", ")}${entries.length > 8 ? `, … (${entries.length} keys)` : ""}}`;
}

/** How deep the first-child chain of arrays/objects goes (iteratively: it may be thousands). */
function nesting(v: unknown): number {
  let n = 0;
  while (v !== null && typeof v === "object" && n < 1e7) {
    const first: unknown = Array.isArray(v) ? v[0] : Object.values(v)[0];
    n++;
    v = first;
  }
  return n;
}

// ---- the contract's oracles -------------------------------------------------------------------

/** An error message (HTTP `{error}`, ProtocolError) that echoes input stays this short in UTF-8. */
export const MAX_ERROR_BYTES = 300;
/** RFC 6455: a close frame's reason is at most 123 bytes of UTF-8. */
export const MAX_CLOSE_REASON_BYTES = 123;
export const MAX_CHANNEL_BYTES = 256;

export const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Valid UTF-16: no lone surrogates (String.prototype.isWellFormed, not in ES2022's lib). */
export const isWellFormed = (s: string): boolean => !LONE_SURROGATE.test(s);
/** C0, DEL and C1 controls. */
export const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The channel contract: 1-256 UTF-8 bytes, starting with "/", no control characters (C0, DEL, C1),
 * no lone surrogates. `/café bar` is a channel.
 */
export function isContractChannel(s: unknown, maxBytes = MAX_CHANNEL_BYTES): s is string {
  return typeof s === "string" && s.startsWith("/") && utf8Bytes(s) <= maxBytes && !CONTROL.test(s) && isWellFormed(s);
}

export const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Why an error message breaks the contract, or null: well-formed, non-empty, at most `max` bytes. */
export function badMessage(message: unknown, max = MAX_ERROR_BYTES): string | null {
  if (typeof message !== "string" || message.length === 0) return `not a non-empty string: ${String(message).slice(0, 60)}`;
  if (!isWellFormed(message)) return `holds a lone surrogate: ${JSON.stringify(message.slice(0, 120))}…`;
  const bytes = utf8Bytes(message);
  if (bytes > max) return `${bytes} UTF-8 bytes (at most ${max}): ${JSON.stringify(message.slice(0, 120))}…`;
  return null;
}

/** A short printable description of a long string, for assertion messages. */
export function brief(s: string | Uint8Array, max = 160): string {
  const text = typeof s === "string" ? s : Buffer.from(s).toString("latin1");
  const quoted = (t: string) => JSON.stringify(t).replace(INVISIBLE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  return text.length <= max ? quoted(text) : `${quoted(text.slice(0, max))}… (${text.length} chars)`;
}
/** Characters that print as nothing or as a space: shown as \u escapes in reports. */
const INVISIBLE = /[\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\uffff]/g;

// ---- characters and strings -------------------------------------------------------------------

const fromCode = (c: number) => String.fromCharCode(c);

export const asciiPrintable = fc.integer({ min: 0x20, max: 0x7e }).map(fromCode);
export const controlChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map(fromCode),
  fc.constant("\x7f"),
  fc.integer({ min: 0x80, max: 0x9f }).map(fromCode),
);
export const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map(fromCode);

/** Non-ASCII, non-control: 2-, 3- and 4-byte UTF-8, including the awkward ones. */
export const multibyteChar = fc.oneof(
  fc.constantFrom("é", "ü", "ß", "ø", "€", "中", "日", "한", "😀", "🎉", "𝄞", "\u00a0", "\u00ad", "\u200b", "\u200d", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "\u0301", "\u{10ffff}"),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }).filter((c) => c.codePointAt(0)! > 0x9f),
);

/** Pieces that mean something to some parser on the way. */
export const specialPiece = fc.constantFrom(
  "/", "%", "&", "=", "+", "?", "#", ";", ":", ",", '"', "\\", " ", "*", "-", ".", "__", "..",
  "\r\n|\r\n", "\r\n||\r\n", "\r\n", "\n", "%2F", "%ZZ", "%E9", "%C3", "%ED%A0%80", "%00", "%FF", "__seq", "__epoch", "/__status",
);

/** Any character at all, biased towards the ones that break things. */
export const anyChar = fc.oneof(
  { weight: 4, arbitrary: asciiPrintable },
  { weight: 3, arbitrary: multibyteChar },
  { weight: 1, arbitrary: controlChar },
  { weight: 1, arbitrary: loneSurrogate },
  { weight: 2, arbitrary: specialPiece },
);

export const anyString = (maxLength = 24) => fc.string({ unit: anyChar, maxLength });

/** A short unit repeated up to `maxRepeat` times: cheap megabytes that shrink to one unit. */
export function repeated(unit: fc.Arbitrary<string>, maxRepeat: number, minRepeat = 1): fc.Arbitrary<string> {
  return fc
    .tuple(fc.string({ unit, minLength: 1, maxLength: 4 }), fc.integer({ min: minRepeat, max: maxRepeat }))
    .map(([s, n]) => s.repeat(n));
}

/** Long non-ASCII text, up to about `maxBytes` UTF-8 bytes. */
export const longMultibyte = (maxBytes: number, minBytes = 1) =>
  repeated(multibyteChar, Math.max(1, Math.floor(maxBytes / 16)), Math.max(1, Math.ceil(minBytes / 4)));

/** Megabytes of anything (up to ~2.4 M UTF-16 units). */
export const hugeString = repeated(anyChar, 250_000, 1);

/** The first code points of `s` that fit in `maxBytes` UTF-8 bytes. */
export function truncateBytes(s: string, maxBytes: number): string {
  let out = "";
  let bytes = 0;
  for (const ch of s) {
    const b = utf8Bytes(ch);
    if (bytes + b > maxBytes) break;
    out += ch;
    bytes += b;
  }
  return out;
}

/** Percent-encodes the UTF-8 of `s` (lone surrogates become U+FFFD; encodeURIComponent throws). */
export function percentEncode(s: string): string {
  return encodeURIComponent(s.replace(LONE_SURROGATES, "\ufffd"));
}
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, "g");

// ---- channels and client ids ------------------------------------------------------------------

const channelChar = fc.oneof({ weight: 3, arbitrary: asciiPrintable }, { weight: 2, arbitrary: multibyteChar });

/** A channel the contract accepts: short ones, and long non-ASCII ones near 256 bytes. */
export const contractChannel: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 3, arbitrary: fc.string({ unit: channelChar, maxLength: 16 }) },
    { weight: 1, arbitrary: longMultibyte(MAX_CHANNEL_BYTES * 2, MAX_CHANNEL_BYTES / 2) },
    { weight: 1, arbitrary: fc.constantFrom("café bar", "chat/42", "a b", "日本語/チャンネル", "😀", "x".repeat(255), "é".repeat(127) + "x") },
  )
  .map((s) => truncateBytes("/" + s, MAX_CHANNEL_BYTES));

/** Strings the contract refuses as channels, each for one reason. */
export const badChannel: fc.Arbitrary<string> = fc.oneof(
  fc.constant(""),
  anyString(12).filter((s) => !s.startsWith("/")),
  fc.tuple(contractChannel, controlChar).map(([c, x]) => truncateBytes(c, MAX_CHANNEL_BYTES - 2) + x),
  fc.tuple(contractChannel, loneSurrogate).map(([c, x]) => truncateBytes(c, MAX_CHANNEL_BYTES - 3) + x),
  // Too long: long non-ASCII text, the kind whose echo overflows an error message or a close reason.
  longMultibyte(4096, MAX_CHANNEL_BYTES + 8).map((s) => "/" + s),
  fc.integer({ min: MAX_CHANNEL_BYTES, max: 2000 }).map((n) => "/" + "x".repeat(n)),
);

/** What ends up where a channel goes: good, reserved, refused by `authorize` ("/no"), bad, anything. */
export const channelish: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: contractChannel },
  { weight: 2, arbitrary: fc.constantFrom("/a", "/chat/42", "/", "/no", "/__status", "/__x", "/alive") },
  { weight: 3, arbitrary: badChannel },
  { weight: 1, arbitrary: anyString() },
);

export const validClientId = fc.string({ unit: fc.constantFrom(..."abcXYZ019_-".split("")), minLength: 1, maxLength: 64 });

/** A client id as it appears in a path segment (percent-encoded where it must be). */
export const clientIdSegment: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: validClientId },
  { weight: 2, arbitrary: anyString(70).map(percentEncode) },
  { weight: 1, arbitrary: fc.constantFrom("", "a".repeat(65), "..", ".", "%2F", "%00", "%zz", "%", "a%20b", "%C3%A9", "%FF", "%ED%A0%80", "ws", "poll", "sse") },
);

// ---- JSON texts -------------------------------------------------------------------------------
// Bodies are generated as text, never built with JSON.stringify from a value: nesting thousands
// deep would overflow the test's own stack, and "1e400", "-0" or 30 digits must reach the server as written.

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(..."0123456789".split("")), minLength: min, maxLength: max });

/** JSON number literals: small, huge, negative, -0, 1e308, beyond double, 30 digits. */
export const numberText: fc.Arbitrary<string> = fc.oneof(
  fc.integer().map(String),
  fc.integer({ min: -5, max: 5 }).map(String),
  fc.constantFrom(
    "-1", "0", "-0", "1", "1e308", "-1e308", "1e400", "-1e400", "1.5", "-2.5e-7", "5e-324", "0.0", "1E3", "-0.0",
    "9007199254740991", "9007199254740992", "-9007199254740993", "123456789012345678901234567890", "-123456789012345678901234567890",
  ),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.tuple(fc.boolean(), digits(1, 40)).map(([neg, d]) => (neg ? "-" : "") + d.replace(/^0+(?=\d)/, "")),
);

/** JSON string literals: numeric-looking, empty, unicode, long multibyte (up to ~100 KB). */
export const stringText: fc.Arbitrary<string> = fc
  .oneof(
    { weight: 3, arbitrary: anyString() },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom("", "-", "+", " "), digits(1, 30)).map(([s, d]) => s + d) },
    { weight: 1, arbitrary: fc.constantFrom("", "-1", "0", " 5", "5 ", "0x10", "1e3", "-", "٣", "Infinity", "NaN", "null", "1.0", "00000000000000005") },
    { weight: 1, arbitrary: longMultibyte(100_000) },
  )
  .map((s) => JSON.stringify(s));

const scalarText = fc.oneof(numberText, stringText, fc.constantFrom("null", "true", "false", "[]", "{}"));

/** Arrays/objects nested `depth` deep around a scalar, written out as text. */
export const deepText = (maxDepth: number): fc.Arbitrary<string> =>
  fc
    .record({ depth: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.noBias(fc.integer({ min: Math.min(1000, maxDepth), max: maxDepth }))), kind: fc.constantFrom("array", "object", "mixed"), leaf: scalarText })
    .map(({ depth, kind, leaf }) => {
      if (kind === "array") return "[".repeat(depth) + leaf + "]".repeat(depth);
      if (kind === "object") return '{"/a":'.repeat(depth) + leaf + "}".repeat(depth);
      const half = Math.ceil(depth / 2);
      return '[{"k":'.repeat(half) + leaf + "}]".repeat(half);
    });

/** Any JSON value with full-unicode keys and strings (lone surrogates arrive as \u escapes). */
export const jsonValueText: fc.Arbitrary<string> = fc
  .jsonValue({ maxDepth: 3, stringUnit: anyChar })
  .map((v) => JSON.stringify(v));

/** What a position (`lastId`), `__seq` or `__epoch` may be sent as. */
export const valueText: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: numberText },
  { weight: 4, arbitrary: stringText },
  { weight: 1, arbitrary: fc.constantFrom("null", "true", "false", "[]", "{}", "[1]", '{"a":1}', "[-1]", '["5"]') },
  { weight: 1, arbitrary: jsonValueText },
  { weight: 1, arbitrary: deepText(12_000) },
);

const subscriptionKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: channelish },
  { weight: 2, arbitrary: fc.constantFrom("__seq", "__epoch") },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "toString", "", "dlp", "__Seq") },
  { weight: 1, arbitrary: longMultibyte(100_000) },
);

const objectText = (entries: [string, string][]) => "{" + entries.map(([k, v]) => JSON.stringify(k) + ":" + v).join(",") + "}";

/** Control keys (and a channel) nested thousands deep: `Number()` and `JSON.stringify` of them recurse. */
export const deepControlText: fc.Arbitrary<string> = fc
  .tuple(fc.constantFrom("__seq", "__seq", "__epoch", "/a"), fc.noBias(fc.integer({ min: 1000, max: 12_000 })), fc.boolean())
  .map(([k, depth, objects]) => objectText([["/b", "-1"], [k, objects ? '{"k":'.repeat(depth) + "1" + "}".repeat(depth) : "[".repeat(depth) + "1" + "]".repeat(depth)]]));

/** A subscription object as JSON text: channels, control keys and junk keys, any values. */
export const subscriptionText: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.array(fc.tuple(subscriptionKey, valueText), { maxLength: 6 }).map(objectText) },
  { weight: 1, arbitrary: deepControlText },
  // About maxChannels (100) channels: "too many channels" and just under it.
  { weight: 1, arbitrary: fc.integer({ min: 95, max: 130 }).map((n) => objectText(Array.from({ length: n }, (_, i) => [`/m${i}`, "-1"]))) },
);

/** A whole JSON body: mostly subscription objects, also other values, deep nesting and broken JSON. */
export const jsonBodyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: subscriptionText },
  { weight: 1, arbitrary: jsonValueText },
  { weight: 1, arbitrary: deepText(12_000) },
  { weight: 1, arbitrary: fc.tuple(subscriptionText, fc.nat()).map(([t, n]) => t.slice(0, n % (t.length + 1))) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "{", "[", "nul", '{"/a":}', "{'/a':1}", '{"/a":1,}', "\ufeff{}", "{}garbage") },
);

// ---- form bodies, query strings, bytes, headers -----------------------------------------------

const badPercent = fc.constantFrom("%", "%Z", "%ZZ", "%G0", "%%", "%2", "%E9", "%C3%28", "%ED%A0%80", "%F4%90%80%80", "%C0%AF", "%FF%FE", "%u00e9", "%2f");
const formToken: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: channelish.map(percentEncode) },
  { weight: 2, arbitrary: valueText.map((t) => percentEncode(t.startsWith('"') ? (JSON.parse(t) as string) : t)) },
  { weight: 2, arbitrary: badPercent },
  { weight: 1, arbitrary: fc.constantFrom("__seq", "__epoch", "dlp", "t", "-1", "0", "", "+", "/a", "/no") },
  { weight: 1, arbitrary: anyString(8) },
);
const formPair = fc.tuple(fc.array(formToken, { minLength: 1, maxLength: 3 }), fc.array(formToken, { maxLength: 3 }), fc.constantFrom("=", "==", "")).map(
  ([k, v, eq]) => k.join("") + eq + v.join(""),
);

/** `a=b&c=d` text with bad percent-encoding, stray separators and raw non-ASCII. */
export const formText: fc.Arbitrary<string> = fc
  .array(fc.tuple(formPair, fc.constantFrom("&", "&", "&&", ";")), { maxLength: 8 })
  .map((pairs) => pairs.map(([p, sep]) => p + sep).join(""));

/** The same, as an ASCII-only query string (what a URL can carry): everything non-ASCII percent-encoded. */
export const queryText: fc.Arbitrary<string> = formText.map((t) => t.replace(/[^\x21-\x7e]/gu, (c) => percentEncode(c)).replace(/#/g, "%23"));

const invalidUtf8 = fc.constantFrom(
  [0xff], [0xfe], [0x80], [0xbf], [0xc3], [0xc3, 0x28], [0xe2, 0x82], [0xe2, 0x28, 0xa1], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xf0, 0x9f, 0x98],
);
const asciiBits = fc.constantFrom("/a=", "-1", "&", "{", "}", '"/a":', '{"/', ":", ",", "__seq=", "=1", '"');

/** Bytes with invalid UTF-8 mixed into subscription-like ASCII. */
export const rawBytes: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: invalidUtf8.map((b) => Uint8Array.from(b)) },
      { weight: 3, arbitrary: asciiBits.map((s) => new Uint8Array(Buffer.from(s))) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) },
      { weight: 1, arbitrary: anyString(6).map((s) => new Uint8Array(Buffer.from(s))) },
    ),
    { minLength: 1, maxLength: 16 },
  )
  .map((parts) => new Uint8Array(Buffer.concat(parts)));

/** A header value as bytes: printable ASCII, tabs, obs-text (0x80-0xff, invalid UTF-8 on its own). */
export const headerValue: fc.Arbitrary<Uint8Array> = fc
  .array(fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) }, { weight: 1, arbitrary: fc.constant(0x09) }, { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }) }), { maxLength: 40 })
  .map((b) => Uint8Array.from(b));

export const contentType: fc.Arbitrary<string | Uint8Array | null> = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8",
      "text/plain", "text/plain;charset=latin1", "multipart/form-data; boundary=x", "APPLICATION/JSON", "application/jsonx", "text/event-stream",
      "*/*", "", "application/json; charset=utf-16", "application/x-ndjson", "application/json, text/plain",
    ),
  },
  { weight: 1, arbitrary: headerValue },
);

/** Last-Event-ID: real-looking (`{epoch}` is replaced by the server's), broken, or raw bytes. */
export const lastEventId: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .tuple(
        fc.oneof(fc.constant("{epoch}"), fc.constant("{epoch}"), fc.constant(""), fc.string({ unit: asciiPrintable, maxLength: 70 })),
        fc.array(fc.oneof(fc.nat().map(String), fc.integer({ min: -3, max: 3 }).map(String), digits(17, 30), fc.constantFrom("", "1e3", "0x10", " 1", "NaN", "1.5", "-0")), { maxLength: 5 }),
      )
      .map(([epoch, ps]) => epoch + ":" + ps.join(",")),
  },
  { weight: 1, arbitrary: fc.string({ unit: asciiPrintable, maxLength: 40 }) },
  { weight: 1, arbitrary: headerValue },
  { weight: 1, arbitrary: repeated(fc.constantFrom("1,", "0,", "x:", ":"), 20_000).map((s) => "{epoch}:" + s) },
);
