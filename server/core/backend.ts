import type { Message } from "../../src/envelope.js";

export type Id = string | number;

/** Who may see a message. Absent or empty lists mean "no restriction on that dimension". */
export interface Targets {
  user_ids?: Id[];
  group_ids?: Id[];
  client_ids?: string[];
  site_id?: string;
}

/** A message as a backend stores it: the envelope plus targeting metadata (never sent on the wire). */
export interface StoredMessage<T = unknown> extends Message<T>, Targets {
  /** `data` as JSON when the backend has it at hand, so the envelope is encoded without a second stringify. */
  dataJson?: string;
}

export interface AppendRequest extends Targets {
  channel: string;
  data: unknown;
  /** `data` as JSON, already encoded (and size-checked) by the bus. */
  dataJson: string;
  /** Keep at most this many messages in the channel's backlog (the newest). */
  maxBacklogSize: number;
  /** Drop messages older than this many seconds from the channel's backlog. */
  maxBacklogAge: number;
  /** Keep at most this many messages in the global backlog. */
  maxGlobalBacklogSize: number;
}

export interface Snapshot {
  epoch: string;
  /** The last global id assigned. */
  globalId: number;
  /** channel → last message id assigned (0 for a channel never published to). */
  lastIds: Map<string, number>;
}

export interface BackendEvents {
  /**
   * Every message published by any process sharing this backend, once, in global-id order and
   * contiguous per channel. A backend that misses a notification catches up from its backlog
   * before delivering later messages.
   */
  message(m: StoredMessage): void;
  /** The backend's ids restarted (flushed store, explicit reset): every position is void. */
  epoch(epoch: string): void;
}

/**
 * What the bus needs from storage (README, "Backends and scale-out"; the wire it serves: docs/protocol.md). Memory, Redis and PostgreSQL implement it; one
 * contract test suite runs against all of them.
 */
export interface Backend {
  readonly kind: string;
  /** Connects and begins delivering messages to `events`. Resolves when delivery is live. */
  start(events: BackendEvents): Promise<void>;
  /** The current epoch (valid after `start`). */
  readonly epoch: string;
  /** Assigns ids atomically, stores, trims, and notifies every process. Rejects when storage is down. */
  append(req: AppendRequest): Promise<StoredMessage>;
  /**
   * The channel's retained messages with message_id > afterId, ascending; at most `limit` of them
   * when given (a catch-up reads a long backlog page by page, so memory stays bounded).
   */
  backlog(channel: string, afterId: number, limit?: number): Promise<StoredMessage[]>;
  /** Retained messages of every channel with global_id > afterGlobalId, ascending. */
  globalBacklog(afterGlobalId: number): Promise<StoredMessage[]>;
  /** Epoch, last global id and last ids of the channels, read together. */
  snapshot(channels: Iterable<string>): Promise<Snapshot>;
  /** Forgets everything and starts a new epoch (tests, demos). */
  reset(): Promise<void>;
  close(): Promise<void>;
  /**
   * Where replies to client requests are kept, shared by every process of this store, so that a
   * request retried through another process is answered, not run again. None: the bus keeps them
   * in its own process (exact only when one process serves a client).
   */
  readonly ledger?: RequestLedger;
}

/** What a claim on a request found (docs/protocol.md#12-requests). */
export type Claim =
  /** Nobody ran it: it is the caller's to run now (held for `claimMs`, then free again). */
  | { state: "run" }
  /** It ran: its reply, as the client was (or would have been) told. */
  | { state: "done"; reply: string }
  /** Another process is running it now. */
  | { state: "running" }
  /** Older than the window of replies kept: it may have run, it is never run again. */
  | { state: "stale" };

export interface LedgerTerms {
  /** How long a claim holds before another process may run the request (a process that died). */
  claimMs: number;
  /** How long replies are kept after a client's last request. */
  keepMs: number;
  /** How many of a client's latest request ids are remembered; older ids are stale. */
  window: number;
}

/** Replies by (client, request id): claimed before a handler runs, settled with the reply after. */
export interface RequestLedger {
  /** `who`: the client and its identity, one string (a reply never reaches another identity). */
  claim(who: string, id: number, terms: LedgerTerms): Promise<Claim>;
  settle(who: string, id: number, reply: string, terms: LedgerTerms): Promise<void>;
  /** Gives a claim back unsettled (the store failed under the handler: nothing was done, it may run again). */
  release(who: string, id: number): Promise<void>;
  close?(): void;
}

export function randomEpoch(): string {
  return Math.floor(Math.random() * 36 ** 8).toString(36).padStart(8, "0");
}

/**
 * A publish the store did not take (down, connection lost mid-way), worded so an operator knows
 * what happened. HTTP publishers get it as 503: try again later.
 */
/**
 * The bus was closed (a shutdown, a deploy): nothing is stored or read any more. A request that
 * races the close is told 503 with `Retry-After`, so its client goes to another process; it is
 * nobody's mistake, so nothing is logged.
 */
export class BusClosedError extends Error {
  readonly status = 503;
  constructor(what = "message not published") {
    super(`cometbus: the bus is closed, ${what}`);
    this.name = "BusClosedError";
  }
}

export class BackendUnavailableError extends Error {
  readonly status = 503;
  /** What a client is told: no host, port or driver detail of the store. */
  readonly clientMessage: string;
  constructor(kind: string, cause: unknown, what = "message not published") {
    super(`cometbus: ${kind} is unavailable, ${what}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "BackendUnavailableError";
    this.clientMessage = `the store is unavailable, ${what}`;
  }
}
