import type { Message } from "../src/envelope.js";
import type { Reply } from "../src/request.js";

export type { Message };
export type TransportName = "websocket" | "sse" | "long-poll" | "poll";
export type Callback = (data: any, globalId: number, messageId: number) => void;

/** The message-bus-client settings, plus cometbus's own; every one can be changed on a live bus. */
export interface ClientOptions {
  baseUrl: string;
  clientId: string;
  headers: Record<string, string>;
  callbackInterval: number;
  backgroundCallbackInterval: number;
  minPollInterval: number;
  maxPollInterval: number;
  alwaysLongPoll: boolean;
  /**
   * message-bus-client's: when set, its answer replaces page visibility in "stay live or poll in the
   * background" (alwaysLongPoll still wins). Asked again on visibility changes, when an HTTP request
   * completes, and at most once a second besides; one that throws counts as not set.
   */
  shouldLongPollCallback?: () => boolean;
  /** ms a background-polling tab waits after any tab of the origin last asked (message-bus-client's `__mbLastAjax`). */
  minHiddenPollInterval: number;
  enableLongPolling: boolean;
  enableChunkedEncoding: boolean;
  firstChunkTimeout: number;
  /** Long-polls that go unchunked after a stream looked buffered (message-bus-client's name). */
  retryChunkedAfterRequests: number;
  /** Order of preference. */
  transports: TransportName[];
  /** The server's heartbeat; two of them without a byte means the connection is dead. */
  heartbeatInterval: number;
  /** First wait before a transport that failed is tried again (doubles per failure, capped, jittered). */
  retryTransportInterval: number;
  /** Where the bus lives under baseUrl (message-bus-client's own path). */
  path: string;
  /** ms `request` and `publish` wait for a reply before they reject with `code: "timeout"`. */
  requestTimeout: number;
  /** Requests sent and not yet answered, at most; more wait their turn (the server refuses past its own limit, 32). */
  maxRequestsInFlight: number;
}

export interface Stats {
  requests: number;
  frames: number;
  bytes: number;
  transportSwitches: number;
}

/** What a transport needs from the bus: where to connect, what to ask for, where to put what arrives. */
export interface Host {
  readonly options: ClientOptions;
  readonly stats: Stats;
  /** `{base}/{clientId}/{what}` as an absolute or page-relative http(s) URL. */
  url(what: "poll" | "sse" | "ws" | "request"): string;
  /** The positions to resume from, with `__epoch` (empty until the server has told one). */
  subscription(): Record<string, number | string>;
  channels(): string[];
  readonly epoch: string;
  /** One batch as the server sent it; `sentEpoch` is the epoch the connection asked with. */
  receive(batch: Message[], sentEpoch: string): void;
  /** True while polling should slow down: the page is hidden, or shouldLongPollCallback says so. */
  background(): boolean;
  /** Chunked long-polls left to send unchunked because a stream looked buffered. */
  chunkedBackoff: number;
  /** The server's last word on how widely to spread a reconnection after a cut (`__spread`), in ms. */
  spreadMs: number;
  /**
   * Why the client last left a transport, encoded (src/fallback.ts), until the next subscribe request
   * carries it to the server (docs/protocol.md#13-fallback-reports).
   */
  fallback: string | null;
  /** A reply to one of our requests, from a WebSocket. */
  reply(r: Reply): void;
  /** The WebSocket closed: requests it carried unanswered are sent again. */
  socketClosed(): void;
}

/** How a transport tells the negotiator it works, or that it gave up. */
export interface TransportEvents {
  up(t: Transport): void;
  fail(t: Transport, why: string, retryAfterMs?: number): void;
  /**
   * A frame or heartbeat arrived, or (`ended`) an HTTP request completed, answered or failed: a moment
   * to ask again whether to stay live, since shouldLongPollCallback can change its mind without an event.
   */
  activity(t: Transport, ended: boolean): void;
}

export interface Transport {
  readonly name: TransportName;
  start(): void;
  stop(): void;
  /** The set of channels changed. */
  refresh(): void;
  /** Connect again after `ms` (the negotiator keeps this transport after a failure). */
  retry(ms: number): void;
}
