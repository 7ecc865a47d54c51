import type { Socket } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import WebSocket from "ws";
import {
  anyString,
  brief,
  channelish,
  contractChannel,
  deepText,
  formText,
  fuzz,
  isContractChannel,
  jsonBodyText,
  jsonValueText,
  longMultibyte,
  MAX_CHANNEL_BYTES,
  MAX_CLOSE_REASON_BYTES,
  numberText,
  rawBytes,
  stringText,
  subscriptionText,
  valueText,
} from "./helpers/fuzz-arbitraries.js";
import { FuzzWatch } from "./helpers/fuzz-watch.js";
import { startServer, type TestServer } from "./helpers/server.js";

/**
 * WebSocket frames under property-based fuzzing: whatever a client sends (JSON of any shape, text
 * that is not JSON, binary, frames around limits.maxFrameBytes, bursts in one write), its socket is
 * either answered (a subscribe gets an array) or closed with 1007/1008/1009/1013 and a non-empty
 * reason of at most 123 UTF-8 bytes; onError stays silent, nothing is left rejected, and a fresh
 * socket still subscribes and receives a publish.
 */
const FILE = "test/fuzz-ws.test.ts";
const REFUSED = "/no";
const CLOSE_CODES = new Set([1007, 1008, 1009, 1013]);
/** An answer or a close that takes longer is a hang. */
const ANSWER_MS = 1500;
/** After the close frame and the client's reply, the server ends the connection within this. */
const END_MS = 500;

let server: TestServer;
let maxFrame = 65536;
const watch = new FuzzWatch();

beforeAll(async () => {
  watch.install();
  server = await startServer({ onError: watch.onError, authorize: (_c, ch) => ch !== REFUSED, clientPublish: (_c, ch) => ch === "/pub" });
  server.bus.handle("echo", (data) => data);
  maxFrame = server.bus.limits.maxFrameBytes;
});
afterAll(async () => {
  await server?.close();
  watch.uninstall();
});

// ---- frames -------------------------------------------------------------------------------------

interface Frame {
  /** 1 text, 2 binary. */
  opcode: 1 | 2;
  payload: Buffer;
  what: string;
}

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** A masked client frame, built by hand so that any payload (invalid UTF-8 text too) goes out as is. */
function encode(f: Frame): Buffer {
  const n = f.payload.length;
  let head: Buffer;
  if (n < 126) head = Buffer.from([0x80 | f.opcode, 0x80 | n]);
  else if (n < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | f.opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | f.opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  const masked = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) masked[i] = f.payload[i] ^ MASK[i & 3];
  return Buffer.concat([head, MASK, masked]);
}

const text = (s: string, what = brief(s, 120)): Frame => ({ opcode: 1, payload: Buffer.from(s, "utf8"), what: `text ${what}` });
const binary = (b: Uint8Array): Frame => ({ opcode: 2, payload: Buffer.from(b), what: `binary ${brief(b, 60)} (${b.length} bytes)` });
/** Counterexamples print as the frames, briefly. */
const printable = <T extends Frame | Frame[]>(arb: fc.Arbitrary<T>) =>
  arb.map((v) => Object.assign(v, { [fc.toStringMethod]: () => (Array.isArray(v) ? `[${v.map((f) => f.what).join(", ")}]` : v.what) }));

const channelList = fc.array(channelish.map((c) => JSON.stringify(c)), { maxLength: 4 }).map((a) => `[${a.join(",")}]`);

/** Requests (docs/protocol.md#12-requests) with ids, methods and data of any shape. */
const requestField = fc.oneof(
  fc.tuple(fc.oneof(fc.integer({ min: 1, max: 1000 }).map(String), numberText, valueText), fc.oneof(fc.constantFrom('"echo"', '"__publish"', '"nope"', '""'), longMultibyte(400).map((s) => JSON.stringify(s)), valueText), fc.oneof(jsonValueText, deepText(12_000), fc.constantFrom('{"channel":"/pub","data":1}', '{"channel":"/x","data":1}')))
    .map(([id, method, data]) => `{"id":${id},"method":${method},"data":${data}}`),
  valueText,
);
const requestFrame: fc.Arbitrary<Frame> = fc.oneof(
  requestField.map((r) => text(`{"request":${r}}`)),
  fc.array(requestField, { maxLength: 40 }).map((rs) => text(`{"requests":[${rs.join(",")}]}`)),
  fc.oneof(valueText, deepText(12_000)).map((v) => text(`{"requests":${v}}`)),
);

/** JSON frames of every shape: subscribe/unsubscribe with any content, other values, deep nesting. */
const jsonFrame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 2, arbitrary: requestFrame },
  { weight: 6, arbitrary: subscriptionText.map((s) => text(`{"subscribe":${s}}`)) },
  { weight: 2, arbitrary: fc.oneof(channelList, valueText, deepText(12_000)).map((u) => text(`{"unsubscribe":${u}}`)) },
  { weight: 2, arbitrary: fc.oneof(valueText, deepText(12_000), jsonValueText).map((v) => text(`{"subscribe":${v}}`)) },
  { weight: 1, arbitrary: fc.tuple(subscriptionText, channelList).map(([s, u]) => text(`{"subscribe":${s},"unsubscribe":${u}}`)) },
  { weight: 2, arbitrary: fc.oneof(jsonValueText, jsonBodyText, numberText, stringText, deepText(12_000)).map((v) => text(v)) },
);

/** Text that is not JSON, and binary frames. */
const junkFrame: fc.Arbitrary<Frame> = fc.oneof(
  fc.oneof(anyString(40), formText, subscriptionText.map((s) => `{"subscribe":${s}`), fc.constantFrom("", " ", "{", "subscribe", "[", "{'subscribe':{}}")).map((s) => text(s)),
  fc.oneof(rawBytes, subscriptionText.map((s) => new Uint8Array(Buffer.from(`{"subscribe":${s}}`)))).map(binary),
);

/** A valid subscribe padded with spaces to `maxFrameBytes + delta` bytes, as text or binary. */
const nearLimitFrame: fc.Arbitrary<Frame> = fc
  .tuple(fc.integer({ min: -64, max: 64 }), fc.constantFrom<1 | 2>(1, 1, 2))
  .map(([delta, opcode]) => {
    const body = '{"subscribe":{"/near-limit":-1}}';
    const size = maxFrame + delta;
    return { opcode, payload: Buffer.from(body + " ".repeat(size - body.length)), what: `${opcode === 1 ? "text" : "binary"} subscribe padded to maxFrameBytes${delta >= 0 ? "+" : ""}${delta}` };
  });

/** Subscribes whose channel, id or __seq is long non-ASCII text. */
const longTextFrame: fc.Arbitrary<Frame> = fc
  .tuple(longMultibyte(4000, 64), fc.constantFrom("channel", "id", "seq", "epoch", "unsubscribe"))
  .map(([s, where]) => {
    const ch = "/" + s;
    const body =
      where === "channel" ? { subscribe: { [ch]: -1 } }
      : where === "id" ? { subscribe: { "/a": s } }
      : where === "seq" ? { subscribe: { "/a": -1, __seq: s } }
      : where === "epoch" ? { subscribe: { "/a": -1, __epoch: s } }
      : { unsubscribe: [ch] };
    return text(JSON.stringify(body), `${where} = ${s.length} chars of ${brief(s.slice(0, 4))}…`);
  });

const anyFrame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 4, arbitrary: jsonFrame },
  { weight: 2, arbitrary: junkFrame },
  { weight: 1, arbitrary: nearLimitFrame },
  { weight: 2, arbitrary: longTextFrame },
);

// ---- a client -----------------------------------------------------------------------------------

interface Session {
  ws: WebSocket;
  /** Frames after the welcome, parsed. */
  received: unknown[];
  /** Frames that were not JSON arrays. */
  bad: string[];
  /** The server's close frame, as soon as it arrives. */
  closeFrame?: { code: number; reason: Buffer };
  /** The connection closed (after the closing handshake, or not). */
  closed?: { code: number; reason: Buffer };
  wait(pred: () => boolean, ms?: number): Promise<boolean>;
}

let sessions = 0;

/** Opens a socket and waits for the server's welcome. */
async function connect(): Promise<Session> {
  const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}${server.bus.options.base}/fz${++sessions}/ws`, { perMessageDeflate: false });
  let welcomed = false;
  let wake = () => {};
  const s: Session = {
    ws,
    received: [],
    bad: [],
    wait: (pred, ms = ANSWER_MS) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve(pred()), ms);
        const check = () => {
          if (pred() || s.closed) {
            clearTimeout(timer);
            resolve(pred());
          } else wake = check;
        };
        check();
      }),
  };
  ws.on("message", (data: Buffer) => {
    const raw = data.toString("utf8");
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      s.bad.push(brief(raw));
    }
    if (!Array.isArray(v)) s.bad.push(brief(raw));
    if (!welcomed) welcomed = true;
    else s.received.push(v);
    wake();
  });
  ws.on("close", (code, reason) => {
    s.closed = { code, reason };
    wake();
  });
  ws.on("error", () => wake());
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => {
      // `ws` emits "close" only once the connection ends; the close frame itself is seen here.
      const receiver = (ws as unknown as { _receiver: NodeJS.EventEmitter })._receiver;
      receiver.prependListener("conclude", (code: number, reason: Buffer) => {
        s.closeFrame = { code, reason: Buffer.from(reason) };
        wake();
      });
      resolve();
    });
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
  });
  if (!(await s.wait(() => welcomed))) throw new Error("no welcome frame");
  return s;
}

/** Writes frames straight to the socket, all in one write. */
function burst(s: Session, frames: Frame[]): void {
  const socket = (s.ws as unknown as { _socket: Socket })._socket;
  socket.write(Buffer.concat(frames.map(encode)));
}

const hasStatusFor = (s: Session, channel: string) =>
  s.received.some((f) => Array.isArray(f) && f.some((m: { channel?: string; data?: object }) => m?.channel === "/__status" && m.data && channel in m.data));

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Why a close breaks the contract, or null. */
function badClose(closed: { code: number; reason: Buffer }): string | null {
  const { code, reason } = closed;
  if (!CLOSE_CODES.has(code)) return `closed with ${code} ${brief(reason.toString("utf8"))}`;
  if (reason.length === 0) return `closed with ${code} and no reason`;
  if (reason.length > MAX_CLOSE_REASON_BYTES) return `closed with ${code} and a ${reason.length}-byte reason`;
  try {
    strictUtf8.decode(reason);
  } catch {
    return `closed with ${code} and a reason that is not UTF-8`;
  }
  return null;
}

/** A socket the server closed: a proper close frame, then the connection ends. */
async function closedProperly(s: Session): Promise<void> {
  if (s.closed && !s.closeFrame) throw new Error(`the connection ended without a close frame (${s.closed.code})`);
  if (!s.closeFrame) return;
  const bad = badClose(s.closeFrame);
  if (bad) throw new Error(bad);
  if (!(await s.wait(() => s.closed !== undefined, END_MS))) {
    throw new Error(`close frame ${s.closeFrame.code} ${brief(s.closeFrame.reason.toString("utf8"))} arrived, but the server did not end the connection within ${END_MS} ms of the client's reply`);
  }
}

let alive = 0;

/** A fresh socket subscribes and receives a publish. */
async function stillServes(): Promise<void> {
  const n = ++alive;
  const channel = `/alive-ws/${n}`;
  const s = await connect().catch((e: Error) => {
    throw new Error(`after the run, a fresh socket did not open: ${e.message}`);
  });
  try {
    s.ws.send(JSON.stringify({ subscribe: { [channel]: -1 } }));
    if (!(await s.wait(() => hasStatusFor(s, channel)))) throw new Error(`after the run, a fresh subscribe was not answered (${s.closed ? `closed ${s.closed.code}` : "open"})`);
    await server.bus.publish(channel, { n });
    const got = () => s.received.some((f) => Array.isArray(f) && f.some((m: { channel?: string; data?: { n?: number } }) => m?.channel === channel && m.data?.n === n));
    if (!(await s.wait(got))) throw new Error("after the run, a fresh socket did not receive a publish");
  } finally {
    s.ws.terminate();
  }
}

/** Before each run: what a failed run left recorded is dropped. */
const beforeRun = () => watch.reset();

/** After each run: the server still serves, nothing is left subscribed, nothing went wrong. */
const afterRun = () => watch.check(server, stillServes);

/**
 * Sends the frames, then a probe subscribe, in one write. Resolves when the probe is answered or
 * the socket closes; throws when neither happens in time.
 */
async function sendAndSettle(frames: Frame[]): Promise<Session> {
  const s = await connect();
  const probe = `/probe/${sessions}`;
  try {
    burst(s, [...frames, text(JSON.stringify({ subscribe: { [probe]: -1 } }))]);
    await s.wait(() => hasStatusFor(s, probe) || s.closeFrame !== undefined);
    if (s.bad.length) throw new Error(`a frame from the server is not a JSON array: ${s.bad[0]}`);
    await closedProperly(s);
    if (!s.closeFrame && !hasStatusFor(s, probe)) throw new Error(`neither answered nor closed within ${ANSWER_MS} ms`);
    return s;
  } finally {
    s.ws.terminate();
  }
}

describe(`fuzz: WebSocket frames (FUZZ_SEED=${process.env.FUZZ_SEED ?? "default"})`, () => {
  it("any frames, in bursts: answered, or closed 1007/1008/1009/1013 with a short reason", () =>
    fuzz(
      FILE,
      "any frames, in bursts: answered, or closed 1007/1008/1009/1013 with a short reason",
      fc.asyncProperty(printable(fc.array(anyFrame, { minLength: 1, maxLength: 4 })), async (frames) => {
        await sendAndSettle(frames);
        await afterRun();
      }),
      { beforeEach: beforeRun, runs: 50, runTimeout: 15_000, timeLimit: 6000 },
    ));

  it("many frames back to back in one write: answered, or closed with a proper code and reason", () =>
    fuzz(
      FILE,
      "many frames back to back in one write: answered, or closed with a proper code and reason",
      fc.asyncProperty(
        printable(fc.array(fc.oneof({ weight: 6, arbitrary: jsonFrame }, { weight: 1, arbitrary: junkFrame }, { weight: 2, arbitrary: longTextFrame }), { minLength: 5, maxLength: 60 })),
        async (frames) => {
          await sendAndSettle(frames);
          await afterRun();
        },
      ),
      { beforeEach: beforeRun, runs: 20, runTimeout: 15_000, timeLimit: 6000 },
    ));

  it("a subscribe is answered exactly when the contract accepts it, else closed 1008 with a short reason", () =>
    fuzz(
      FILE,
      "a subscribe is answered exactly when the contract accepts it, else closed 1008 with a short reason",
      fc.asyncProperty(
        fc.oneof(contractChannel, longMultibyte(3000, MAX_CHANNEL_BYTES).map((s) => "/" + s), fc.constant(REFUSED), contractChannel.map((c) => c.slice(0, 40) + "\u0085")),
        fc.oneof(
          fc.integer({ min: -5, max: 1_000_000 }).map((n) => ({ value: n as unknown, ok: true })),
          fc.constantFrom({ value: "", ok: true }, { value: null, ok: true }, { value: "12", ok: true }, { value: 1.5, ok: false }, { value: "123456789012345678901234567890", ok: false }),
          longMultibyte(3000, 40).map((s) => ({ value: s as unknown, ok: false })),
        ),
        fc.oneof(
          fc.constant({ value: undefined as unknown, ok: true }),
          fc.integer().map((n) => ({ value: n as unknown, ok: true })),
          longMultibyte(3000, 40).map((s) => ({ value: s as unknown, ok: false })),
        ),
        async (channel, id, seq) => {
          const body: Record<string, unknown> = { [channel]: id.value };
          if (seq.value !== undefined) body.__seq = seq.value;
          const accept = isContractChannel(channel) && channel !== REFUSED && id.ok && seq.ok;
          const s = await connect();
          try {
            burst(s, [text(JSON.stringify({ subscribe: body }))]);
            const answered = await s.wait(() => s.received.length > 0 || s.closeFrame !== undefined).then(() => s.received.length > 0);
            const what = `subscribe ${brief(JSON.stringify(body), 160)} (${Buffer.byteLength(channel)}-byte channel)`;
            if (s.bad.length) throw new Error(`${what}: a frame from the server is not a JSON array: ${s.bad[0]}`);
            const close = s.closeFrame ?? s.closed;
            if (accept) {
              if (!answered) throw new Error(`${what}: the contract accepts it, but ${close ? `the socket closed ${close.code} ${brief(close.reason.toString("utf8"))}` : `no answer within ${ANSWER_MS} ms`}`);
            } else {
              if (!close) throw new Error(`${what}: the contract refuses it, but ${answered ? "it was answered" : `the socket neither answered nor closed within ${ANSWER_MS} ms`}`);
              await closedProperly(s).catch((e: Error) => {
                throw new Error(`${what}: ${e.message}`);
              });
              if (close.code !== 1008) throw new Error(`${what}: closed ${close.code}, expected 1008`);
            }
          } finally {
            s.ws.terminate();
          }
          await afterRun();
        },
      ),
      { beforeEach: beforeRun, runs: 50, runTimeout: 15_000, timeLimit: 6000 },
    ));

  it("frames just under maxFrameBytes are read, just over are closed 1009", () =>
    fuzz(
      FILE,
      "frames just under maxFrameBytes are read, just over are closed 1009",
      fc.asyncProperty(printable(nearLimitFrame), async (frame) => {
        const s = await sendAndSettle([frame]);
        const over = frame.payload.length > maxFrame;
        const expected = over ? 1009 : frame.opcode === 2 ? 1007 : undefined;
        if (s.closeFrame?.code !== expected) {
          throw new Error(`${frame.payload.length}-byte ${frame.opcode === 1 ? "text" : "binary"} frame (limit ${maxFrame}): ${s.closeFrame ? `closed ${s.closeFrame.code}` : "answered"}, expected ${expected ?? "an answer"}`);
        }
        await afterRun();
      }),
      { beforeEach: beforeRun, runs: 20, runTimeout: 15_000, timeLimit: 6000 },
    ));

  it("frames the ws library refuses itself (invalid UTF-8 text, over 4 × maxFrameBytes) still close with a code and a reason", () =>
    fuzz(
      FILE,
      "frames the ws library refuses itself (invalid UTF-8 text, over 4 × maxFrameBytes) still close with a code and a reason",
      fc.asyncProperty(
        printable(
          fc.oneof(
            rawBytes.filter((b) => { try { strictUtf8.decode(b); return false; } catch { return true; } }).map((b): Frame => ({ opcode: 1, payload: Buffer.from(b), what: `text frame of invalid UTF-8 ${brief(b, 40)}` })),
            fc.integer({ min: 1, max: 4096 }).map((extra): Frame => ({ opcode: 1, payload: Buffer.alloc(maxFrame * 4 + extra, 0x20), what: `text frame of 4 × maxFrameBytes + ${extra} bytes` })),
          ),
        ),
        async (frame) => {
          await sendAndSettle([frame]);
          await afterRun();
        },
      ),
      { beforeEach: beforeRun, runs: 10, runTimeout: 15_000, timeLimit: 6000 },
    ));
});
