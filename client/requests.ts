import { isRequestId, PUBLISH_METHOD, type Reply } from "../src/request.js";
import { retryAfterMs } from "./backoff.js";
import { stampRequest } from "./last-request.js";

/** A request that did not get a 200: the server's `status` and words, or `code` when it got no reply at all. */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: "timeout",
  ) {
    super(message);
    this.name = "RequestError";
  }
}

/** What the outbox needs from the bus. */
export interface OutboxHost {
  /** `POST` target: `{base}/{clientId}/request`. */
  requestUrl(): string;
  headers(): Record<string, string>;
  /** Sends a frame on the WebSocket delivering now, if there is one and it is up; false otherwise. */
  sendOnSocket(frame: string): boolean;
  countRequest(): void;
  requestTimeout(): number;
  /** Requests sent and not yet answered, at most (the server's own limit is above it). */
  maxRequestsInFlight(): number;
}

interface Pending {
  id: number;
  json: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
  /** Where it went and is waiting for its reply: on the socket, over HTTP, or not sent yet. */
  via: "socket" | "http" | null;
}

/** Most requests in one frame or POST. */
const BATCH = 32;

/**
 * Requests to the server (docs/protocol.md#12-requests), numbered 1, 2, 3… per client id: sent in
 * order on the WebSocket when one delivers, else over `POST {base}/{clientId}/request`; a request
 * not answered when its connection goes is sent again, with the same id, on whatever carries next,
 * so the server runs it once and answers the retry with the reply it kept.
 */
export class Outbox {
  private nextId = 1;
  /** By id, so in the order made. */
  private readonly pending = new Map<number, Pending>();
  private retryTimer?: ReturnType<typeof setTimeout>;
  private failures = 0;

  constructor(private readonly host: OutboxHost) {}

  request(method: string, data: unknown, timeout = this.host.requestTimeout()): Promise<unknown> {
    const id = this.nextId++;
    let json: string;
    try {
      json = JSON.stringify({ id, method, data: data === undefined ? null : data });
    } catch (e) {
      return Promise.reject(new TypeError(`cometbus: request data is not JSON: ${e instanceof Error ? e.message : e}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError(`request ${id} (${method}) got no reply within ${timeout} ms`, undefined, "timeout"));
      }, timeout);
      this.pending.set(id, { id, json, resolve, reject, timer, via: null });
      this.flush();
    });
  }

  publish(channel: string, data: unknown): Promise<{ globalId: number; messageId: number }> {
    return this.request(PUBLISH_METHOD, { channel, data }).then((r) => {
      const { global_id, message_id } = r as { global_id: number; message_id: number };
      return { globalId: global_id, messageId: message_id };
    });
  }

  /**
   * Sends what waits: on the socket if one is up, else one POST at a time. Never on both at once:
   * the server takes a client's requests in the order they reach it, so one route at a time keeps
   * that the order they were made.
   */
  flush(): void {
    const all = [...this.pending.values()];
    const waiting = all.filter((p) => p.via === null);
    if (!waiting.length) return;
    const out = all.filter((p) => p.via !== null);
    if (out.some((p) => p.via === "http")) return; // the POST's answer first
    const batch = waiting.slice(0, Math.max(0, Math.min(this.host.maxRequestsInFlight() - out.length, BATCH)));
    if (!batch.length) return;
    if (this.host.sendOnSocket(frameOf(batch))) {
      for (const p of batch) p.via = "socket";
      return;
    }
    // Requests out on a socket are answered there, or sent again when it closes.
    if (out.length) return;
    void this.post(batch);
  }

  private async post(batch: Pending[]): Promise<void> {
    for (const p of batch) p.via = "http";
    let retryIn: number | null = null;
    try {
      this.host.countRequest();
      stampRequest();
      const res = await fetch(this.host.requestUrl(), {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-SILENCE-LOGGER": "true", ...this.host.headers() },
        body: frameOf(batch),
        cache: "no-store",
        credentials: "same-origin",
      });
      const text = await res.text();
      if (res.ok) {
        this.failures = 0;
        for (const r of (JSON.parse(text) as { replies: Reply[] }).replies) this.reply(r);
      } else if (res.status === 503 || res.status === 429 || res.status >= 500) {
        // Refused for now (overloaded, the store down): nothing ran; asked again later, same ids.
        retryIn = retryAfterMs(res.headers.get("retry-after")) ?? this.backoff();
      } else {
        const error = safeError(text) ?? `HTTP ${res.status}`;
        for (const p of batch) this.settle(p.id, new RequestError(error, res.status));
      }
    } catch {
      retryIn = this.backoff(); // no answer (the network, a cut): asked again, same ids
    } finally {
      for (const p of batch) if (this.pending.get(p.id) === p && p.via === "http") p.via = null;
    }
    if (retryIn === null) this.flush();
    else this.later(retryIn);
  }

  /** A reply, from the socket or a POST's answer. 503: nothing ran; asked again, same id. */
  reply(r: Reply): void {
    if (!r || !isRequestId(r.id)) return;
    const p = this.pending.get(r.id);
    if (!p) return;
    if (r.status === 503) {
      p.via = null;
      return this.later(this.backoff());
    }
    this.settle(r.id, r.status === 200 ? null : new RequestError(r.error ?? `status ${r.status}`, r.status), r.data);
    this.flush();
  }

  /** The socket closed: what it carried unanswered goes again on what carries next. */
  socketClosed(): void {
    let any = false;
    for (const p of this.pending.values()) {
      if (p.via === "socket") {
        p.via = null;
        any = true;
      }
    }
    if (any) this.flush();
  }

  private settle(id: number, error: Error | null, data?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(data);
  }

  private backoff(): number {
    this.failures++;
    return Math.min(10_000, 250 * 2 ** Math.min(this.failures, 6)) * (0.5 + Math.random() / 2);
  }

  private later(ms: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.flush(), ms);
  }

  /** Requests made and not yet answered. */
  get size(): number {
    return this.pending.size;
  }
}

function frameOf(batch: readonly Pending[]): string {
  return `{"requests":[${batch.map((p) => p.json).join(",")}]}`;
}

function safeError(text: string): string | null {
  try {
    const e = (JSON.parse(text) as { error?: unknown }).error;
    return typeof e === "string" ? e : null;
  } catch {
    return null;
  }
}
