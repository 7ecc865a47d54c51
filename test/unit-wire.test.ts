/**
 * The bytes on the wire, exactly: the envelope and `/__status` (src/envelope.ts) and each
 * transport's framing (src/wire.ts). message-bus-client and EventSource parse these bytes, so a
 * difference of one character is a protocol bug even when cometbus's own client copes.
 */
import { createParser } from "eventsource-parser";
import { describe, expect, it } from "vitest";
import { isEpoch } from "../src/channel.js";
import { encodeEnvelope, encodeMessage, encodeStatus, isStatus, type Message, STATUS_CHANNEL, statusMessage } from "../src/envelope.js";
import {
  batchJson,
  CHUNK_SEPARATOR,
  decodeChunks,
  encodeChunk,
  jsonArray,
  parseSseId,
  SSE_HEARTBEAT,
  SSE_PREAMBLE,
  sseEvent,
  sseId,
  WS_CLOSE,
} from "../src/wire.js";

const msg = (global_id: number, message_id: number, channel: string, data: unknown): Message => ({ global_id, message_id, channel, data });

describe("the envelope", () => {
  it("is message_bus's JSON, keys in its order whatever the object's order", () => {
    const m = { data: { text: "hi", n: [1, 2] }, channel: "/chat/42", message_id: 5, global_id: 12 };
    expect(encodeMessage(m)).toBe('{"global_id":12,"message_id":5,"channel":"/chat/42","data":{"text":"hi","n":[1,2]}}');
  });

  it("carries nothing but the four keys: targeting and cached JSON never reach the wire", () => {
    const stored = { ...msg(3, 1, "/secret", "x"), user_ids: [7], group_ids: [1], client_ids: ["c"], site_id: "s", dataJson: '"x"' };
    expect(encodeMessage(stored)).toBe('{"global_id":3,"message_id":1,"channel":"/secret","data":"x"}');
  });

  it("keeps UTF-8 as it is and escapes what JSON must (no raw CR or LF, ever)", () => {
    expect(encodeMessage(msg(1, 1, "/café bar", "a\r\n|\r\nb \u2028 \"q\""))).toBe(
      '{"global_id":1,"message_id":1,"channel":"/café bar","data":"a\\r\\n|\\r\\nb \u2028 \\"q\\""}',
    );
    expect(encodeMessage(msg(1, 1, "/n", null))).toBe('{"global_id":1,"message_id":1,"channel":"/n","data":null}');
  });
});

describe("/__status", () => {
  it("is a message with ids -1 on /__status, its data as given", () => {
    const data = { "/a": 3, "/b": 0, __epoch: "e1", __reset: ["/b"] };
    const s = statusMessage(data);
    expect(s).toEqual({ global_id: -1, message_id: -1, channel: "/__status", data });
    expect(STATUS_CHANNEL).toBe("/__status");
    expect(encodeMessage(s)).toBe('{"global_id":-1,"message_id":-1,"channel":"/__status","data":{"/a":3,"/b":0,"__epoch":"e1","__reset":["/b"]}}');
  });

  it("is told apart by its channel alone", () => {
    expect(isStatus(statusMessage({}))).toBe(true);
    expect(isStatus(msg(1, 1, "/__status", {}))).toBe(true);
    expect(isStatus(msg(-1, -1, "/__statusx", {}))).toBe(false);
    expect(isStatus(msg(1, 1, "/a", {}))).toBe(false);
  });
});

describe("poll answers and WebSocket frames: a JSON array", () => {
  it("joins already-encoded envelopes without re-encoding them", () => {
    expect(jsonArray([])).toBe("[]");
    expect(jsonArray(['{"a":1}'])).toBe('[{"a":1}]');
    expect(jsonArray(['{"a":1}', '{"b":2}', "3"])).toBe('[{"a":1},{"b":2},3]');
    const batch = [msg(1, 1, "/a", "x"), statusMessage({ "/a": 1 })];
    expect(jsonArray(batch.map(encodeMessage))).toBe(JSON.stringify(batch));
  });
});

describe("chunked long-poll: message_bus's chunks", () => {
  it("ends each chunk with CRLF | CRLF", () => {
    expect(CHUNK_SEPARATOR).toBe("\r\n|\r\n");
    expect(encodeChunk("[]")).toBe("[]\r\n|\r\n");
    expect(encodeChunk('[{"a":1}]')).toBe('[{"a":1}]\r\n|\r\n');
  });

  it("escapes a separator inside a chunk as CRLF || CRLF, and the decoder undoes it", () => {
    expect(encodeChunk("a\r\n|\r\nb")).toBe("a\r\n||\r\nb\r\n|\r\n");
    expect(encodeChunk("\r\n|\r\n\r\n|\r\n")).toBe("\r\n||\r\n\r\n||\r\n\r\n|\r\n");
    expect(decodeChunks(encodeChunk("a\r\n|\r\nb"))).toEqual({ chunks: ["a\r\n|\r\nb"], rest: "" });
  });

  it("never needs the escape for JSON, which holds no raw CR or LF", () => {
    const json = JSON.stringify([msg(1, 1, "/a", "\r\n|\r\n")]);
    expect(encodeChunk(json)).toBe(json + "\r\n|\r\n");
  });

  it("decodes whole chunks and keeps the unfinished rest, however the bytes were cut", () => {
    const stream = encodeChunk("[]") + encodeChunk('[{"a":1}]') + '[{"b"';
    expect(decodeChunks(stream)).toEqual({ chunks: ["[]", '[{"a":1}]'], rest: '[{"b"' });
    expect(decodeChunks("")).toEqual({ chunks: [], rest: "" });
    // A separator split across two reads is no separator until its last byte is there.
    expect(decodeChunks("[]\r\n|\r")).toEqual({ chunks: [], rest: "[]\r\n|\r" });
    expect(decodeChunks("[]\r\n|\r" + "\n")).toEqual({ chunks: ["[]"], rest: "" });
  });
});

describe("Server-Sent Events", () => {
  it("starts a stream with a 1 s retry and a comment; heartbeats are comments", () => {
    expect(SSE_PREAMBLE).toBe("retry: 1000\n: cometbus\n\n");
    expect(SSE_HEARTBEAT).toBe(": hb\n\n");
  });

  it("is one event per message: an id line, one data line, a blank line", () => {
    expect(sseEvent("e1:5,0", '{"a":1}')).toBe('id: e1:5,0\ndata: {"a":1}\n\n');
  });

  it("parses as an EventSource would: the id, the data, the retry, and no event from comments", () => {
    const events: { id?: string; data: string }[] = [];
    let retry: number | undefined;
    const parser = createParser({ onEvent: (e) => events.push({ id: e.id, data: e.data }), onRetry: (r) => (retry = r) });
    const json = encodeMessage(msg(7, 3, "/a", { t: "x\ny" }));
    parser.feed(SSE_PREAMBLE + sseEvent("e1:3", json) + SSE_HEARTBEAT);
    expect(retry).toBe(1000);
    expect(events).toEqual([{ id: "e1:3", data: json }]);
  });
});

describe("SSE event ids: the epoch and every channel's position", () => {
  it("writes epoch:p1,p2,… in the subscription's order, from any iterable", () => {
    expect(sseId("e1", [5, 0, 12])).toBe("e1:5,0,12");
    expect(sseId("e1", [7])).toBe("e1:7");
    expect(sseId("e1", [])).toBe("e1:");
    expect(sseId("e1", new Map([["/a", 2], ["/b", 9]]).values())).toBe("e1:2,9");
  });

  it("reads back what it wrote, for the number of channels asked", () => {
    expect(parseSseId("e1:5,0,12", 3)).toEqual({ epoch: "e1", positions: [5, 0, 12] });
    expect(parseSseId("e1:", 0)).toEqual({ epoch: "e1", positions: [] });
    expect(parseSseId(sseId("0abc", [Number.MAX_SAFE_INTEGER, 1]), 2)).toEqual({ epoch: "0abc", positions: [Number.MAX_SAFE_INTEGER, 1] });
  });

  it("refuses a missing id, no epoch, or another number of channels", () => {
    for (const id of [null, undefined, "", "e1", ":5", ":"]) expect(parseSseId(id, 1), String(id)).toBeNull();
    expect(parseSseId("e1:5,0", 3)).toBeNull();
    expect(parseSseId("e1:5,0,12", 2)).toBeNull();
    expect(parseSseId("e1:", 1)).toBeNull();
  });

  it("takes decimal digits only, within safe integers", () => {
    for (const list of ["0x10", "1e3", " 1", "1 ", "-1", "+1", "1.5", "", "1,", ",1", "1,,2", "12345678901234567", "9007199254740993"]) {
      const n = list.split(",").length;
      expect(parseSseId(`e1:${list}`, n), list).toBeNull();
    }
  });

  it("splits at the first colon: an epoch cannot hold one", () => {
    expect(parseSseId("a:b:1", 1)).toBeNull();
  });
});

describe("WebSocket close codes", () => {
  it("are the ones the README promises", () => {
    expect(WS_CLOSE).toEqual({ normal: 1000, goingAway: 1001, invalidData: 1007, policy: 1008, tooBig: 1009, serverError: 1011, serviceRestart: 1012, tryAgainLater: 1013 });
  });
});

describe("encodings from text already JSON", () => {
  it("encodeEnvelope around the publisher's JSON is byte for byte encodeMessage", () => {
    for (const data of [null, 0, -1.5e-7, "é\u2028\"", { a: [1, { b: null }] }, "x".repeat(300)]) {
      for (const channel of ["/a", "/café bar", '/q"\\']) {
        expect(encodeEnvelope(3, 2, channel, JSON.stringify(data))).toBe(encodeMessage(msg(3, 2, channel, data)));
      }
    }
  });

  it("a batch is the messages, then the status last; without a status just the messages", () => {
    const a = encodeMessage(msg(1, 1, "/a", 1));
    const b = encodeMessage(msg(2, 1, "/b", 2));
    expect(batchJson([a, b], { "/a": 1, __epoch: "e1" })).toBe(`[${a},${b},${encodeStatus({ "/a": 1, __epoch: "e1" })}]`);
    expect(batchJson([a], null)).toBe(`[${a}]`);
    expect(batchJson([], null)).toBe("[]");
    expect(encodeStatus({ "/x": 0 })).toBe('{"global_id":-1,"message_id":-1,"channel":"/__status","data":{"/x":0}}');
  });

  it("an epoch is 1-64 characters of A-Z a-z 0-9 _ - (it travels in SSE ids and every __epoch)", () => {
    for (const ok of ["0", "k3x9a1zq", "A_b-9", "e".repeat(64)]) expect({ ok, is: isEpoch(ok) }).toEqual({ ok, is: true });
    for (const bad of ["", "e".repeat(65), "a:b", "a\nb", "a,b", "é", 5, null]) expect({ bad, is: isEpoch(bad) }).toEqual({ bad, is: false });
  });
});
