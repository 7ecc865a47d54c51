import { ProtocolError } from "./errors.js";
import { nestedDeeperThan } from "./json-depth.js";
import { isWellFormed, quote, utf8Length } from "./text.js";

/**
 * Requests from a client to the server, and their replies (docs/protocol.md#12-requests): a client
 * numbers its requests 1, 2, 3…; the server runs each once per (client, id), in that order, and
 * answers a retry with the reply it kept.
 */
export interface RequestEnvelope {
  /** The client's number for it: a positive integer, increasing. */
  id: number;
  /** The handler's name; names starting with `__` are the protocol's own (`__publish`). */
  method: string;
  data: unknown;
}

/** What the server answers: `status` 200 with `data`, or another status with `error`. */
export interface Reply {
  id: number;
  status: number;
  data?: unknown;
  error?: string;
}

/** A reply travels on a WebSocket as an envelope of this channel (never a channel anyone can subscribe). */
export const REPLY_CHANNEL = "/__reply";

/** A client publish is the request of this method: `data` is `{ channel, data }`. */
export const PUBLISH_METHOD = "__publish";

export const MAX_METHOD_BYTES = 100;
/** Deepest nesting of a request's data (its reply may echo it, and encoding recurses). */
export const MAX_DATA_DEPTH = 1000;

/** A request id: what a client may number its requests with. */
export function isRequestId(id: unknown): id is number {
  return typeof id === "number" && Number.isSafeInteger(id) && id > 0;
}

function checkRequest(r: unknown): RequestEnvelope {
  if (!r || typeof r !== "object" || Array.isArray(r)) throw new ProtocolError('a request is an object: {"id":1,"method":"say","data":…}');
  const { id, method, data } = r as Record<string, unknown>;
  if (!isRequestId(id)) throw new ProtocolError(`bad request id: ${quote(id, 40)} (a positive integer)`);
  if (typeof method !== "string" || method.length === 0 || utf8Length(method) > MAX_METHOD_BYTES || !isWellFormed(method) || /[\u0000-\u001f\u007f]/.test(method)) {
    throw new ProtocolError(`bad method: ${quote(method, 60)} (1-${MAX_METHOD_BYTES} bytes of text)`);
  }
  if (nestedDeeperThan(data, MAX_DATA_DEPTH)) throw new ProtocolError(`request ${id}: data nested too deeply: at most ${MAX_DATA_DEPTH} levels`);
  return { id, method, data: data === undefined ? null : data };
}

/**
 * A request body or frame: `{"request":{…}}`, `{"requests":[…]}`, or (HTTP) one request or
 * `{"requests":[…]}` alone. Ids must increase within it: a client sends its requests in order.
 */
export function parseRequests(body: unknown, maxCount: number): RequestEnvelope[] {
  const b = body as Record<string, unknown> | null;
  let list: unknown[];
  if (b && typeof b === "object" && !Array.isArray(b) && "requests" in b) {
    if (!Array.isArray(b.requests)) throw new ProtocolError('"requests" is an array of requests');
    list = b.requests;
  } else if (b && typeof b === "object" && !Array.isArray(b) && "request" in b) list = [b.request];
  else list = [body];
  if (list.length === 0) throw new ProtocolError("no request given");
  if (list.length > maxCount) throw new ProtocolError(`too many requests at once: at most ${maxCount}`, 413);
  const out = list.map(checkRequest);
  for (let i = 1; i < out.length; i++) {
    if (out[i].id <= out[i - 1].id) throw new ProtocolError(`request ids must increase: ${out[i].id} after ${out[i - 1].id}`);
  }
  return out;
}

/** A reply as JSON: `data` only with 200, `error` otherwise. */
export function encodeReply(r: Reply): string {
  return r.status === 200
    ? `{"id":${r.id},"status":200,"data":${JSON.stringify(r.data === undefined ? null : r.data)}}`
    : `{"id":${r.id},"status":${r.status},"error":${JSON.stringify(r.error ?? "")}}`;
}

/** A WebSocket frame carrying replies already encoded (the server keeps them as text). */
export function replyFrame(replies: readonly string[]): string {
  return `[${replies.map((r) => `{"global_id":-1,"message_id":-1,"channel":"${REPLY_CHANNEL}","data":${r}}`).join(",")}]`;
}

/** An HTTP answer carrying replies already encoded. */
export function repliesJson(replies: readonly string[]): string {
  return `{"replies":[${replies.join(",")}]}`;
}
