import { ProtocolError } from "../../src/errors.js";
import { encodeReply, PUBLISH_METHOD, type Reply, type RequestEnvelope } from "../../src/request.js";
import { utf8Length } from "../../src/text.js";
import { BackendUnavailableError, type Id, type LedgerTerms, type RequestLedger } from "./backend.js";
import { RateBucket } from "./rate-bucket.js";
import type { Identity } from "./targeting.js";

/** What a handler is given besides the request's data. `c` is the request's (or the WebSocket upgrade's) Hono Context. */
export interface RequestContext<C = unknown> {
  c: C;
  clientId: string;
  userId?: Id | null;
  groupIds?: Id[] | null;
  siteId?: string | null;
}

export type Handler<C = unknown> = (data: unknown, ctx: RequestContext<C>) => unknown;

export interface RequestSettings {
  ledger: RequestLedger;
  handlers: ReadonlyMap<string, Handler>;
  /** A client publish (`__publish`): stores and fans out, or throws (403 when the app does not allow it). */
  publish(c: unknown, who: Identity, channel: unknown, data: unknown): Promise<{ globalId: number; messageId: number }>;
  /** ms a handler may take; then the request is answered 504. */
  timeoutMs: number;
  keepMs: number;
  /** Replies remembered per client (the ledger's window of ids). */
  window: number;
  maxInFlight: number;
  perSecond: number;
  /** Largest reply, as JSON. */
  maxReplyBytes: number;
  report(e: unknown): void;
}

interface Job {
  req: RequestEnvelope;
  c: unknown;
  who: Identity;
  answer(id: number, reply: string): void;
}

/** One client's requests: run one at a time, in the order they came. */
class ClientQueue {
  readonly jobs: Job[] = [];
  running = false;
  constructor(readonly bucket: RateBucket) {}
}

/** How long to wait between looks at a request another process is running. */
const RUNNING_POLL_MS = 50;

/**
 * Runs client requests (docs/protocol.md#12-requests): per client one at a time, in order; each
 * (client, id) once, its reply kept in the ledger so a retry, through whatever transport or
 * process, gets the same reply. Past `perSecond` a client's requests wait their turn; one that
 * finds `maxInFlight` waiting is answered 429 at once and not kept (it never ran: asking again runs it).
 */
export class RequestRunner {
  private readonly queues = new Map<string, ClientQueue>();
  private readonly terms: LedgerTerms;
  private sweeper?: ReturnType<typeof setInterval>;
  inFlight = 0;

  constructor(private readonly s: RequestSettings) {
    this.terms = { claimMs: s.timeoutMs + 5000, keepMs: s.keepMs, window: s.window };
  }

  /** Queues a client's requests; `answer` gets each reply (JSON text), in order for those that run. */
  submit(who: Identity, requests: readonly RequestEnvelope[], c: unknown, answer: (id: number, reply: string) => void): void {
    const key = clientKey(who);
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = new ClientQueue(new RateBucket(this.s.perSecond))));
    this.sweep();
    for (const req of requests) {
      if (q.jobs.length >= this.s.maxInFlight) {
        answer(req.id, encodeReply({ id: req.id, status: 429, error: `too many requests waiting: at most ${this.s.maxInFlight} (at most ${this.s.perSecond} run per second)` }));
      } else q.jobs.push({ req, c, who, answer });
    }
    void this.pump(key, q);
  }

  private async pump(key: string, q: ClientQueue): Promise<void> {
    if (q.running) return;
    q.running = true;
    try {
      while (q.jobs.length) {
        const job = q.jobs[0];
        // Past the rate, requests wait their turn (and pile up to the in-flight limit, then 429).
        const due = q.bucket.reserve();
        if (due > 0) await new Promise((r) => setTimeout(r, due));
        this.inFlight++;
        let storeDown = false;
        try {
          const reply = await this.once(key, job);
          storeDown = reply === STORE_DOWN;
          job.answer(job.req.id, storeDown ? encodeReply(unavailableReply(job.req.id)) : reply);
        } catch (e) {
          this.s.report(e);
        } finally {
          this.inFlight--;
          q.jobs.shift();
        }
        // The ones behind it must not run before it: all are answered 503 and asked again, in order.
        if (storeDown) for (const j of q.jobs.splice(0)) j.answer(j.req.id, encodeReply(unavailableReply(j.req.id)));
      }
    } finally {
      q.running = false;
    }
  }

  /** The reply of one request: the kept one, or the handler's, run now and kept. */
  private async once(key: string, job: Job): Promise<string> {
    const { id } = job.req;
    for (;;) {
      let claim;
      try {
        claim = await this.s.ledger.claim(key, id, this.terms);
      } catch (e) {
        if (!(e instanceof BackendUnavailableError)) this.s.report(e);
        return STORE_DOWN;
      }
      if (claim.state === "done") return claim.reply;
      if (claim.state === "stale") return encodeReply({ id, status: 409, error: `request ${id} is older than the replies kept: it is not run again` });
      if (claim.state === "running") {
        // Another process has it (the client switched over mid-request): its reply will come.
        await new Promise((r) => setTimeout(r, RUNNING_POLL_MS));
        continue;
      }
      const { reply, storeFailed } = await this.run(job);
      try {
        // The store failed under it (a publish it made was refused): nothing happened, so nothing is
        // kept, and the client's retry runs it again.
        if (storeFailed) await this.s.ledger.release(key, id);
        else await this.s.ledger.settle(key, id, reply, this.terms);
      } catch (e) {
        // Ran, but not kept: a retry may run it again. Said to the operator, the reply still goes out.
        this.s.report(e);
      }
      return storeFailed ? STORE_DOWN : reply;
    }
  }

  private async run({ req, c, who }: Job): Promise<{ reply: string; storeFailed: boolean }> {
    const { id, method, data } = req;
    const ctx: RequestContext = { c, clientId: who.clientId, userId: who.userId, groupIds: who.groupIds, siteId: who.siteId };
    let out: Reply;
    try {
      const work =
        method === PUBLISH_METHOD
          ? this.publish(c, who, data)
          : (() => {
              const handler = this.s.handlers.get(method);
              if (!handler) throw new ProtocolError(`unknown method: ${JSON.stringify(method)}`, 404);
              return handler(data, ctx);
            })();
      const value = await withTimeout(Promise.resolve(work), this.s.timeoutMs);
      out = value === TIMED_OUT ? { id, status: 504, error: `the handler did not answer within ${this.s.timeoutMs} ms` } : { id, status: 200, data: value };
    } catch (e) {
      if (e instanceof BackendUnavailableError) return { reply: "", storeFailed: true };
      out = failure(id, e, this.s.report);
    }
    return { reply: this.encode(out), storeFailed: false };
  }

  private async publish(c: unknown, who: Identity, data: unknown): Promise<{ global_id: number; message_id: number }> {
    if (!data || typeof data !== "object" || Array.isArray(data) || !("channel" in data)) {
      throw new ProtocolError('a publish takes {"channel":"/x","data":…}');
    }
    const { channel, data: payload } = data as { channel: unknown; data: unknown };
    const r = await this.s.publish(c, who, channel, payload);
    return { global_id: r.globalId, message_id: r.messageId };
  }

  private encode(r: Reply): string {
    let json: string;
    try {
      json = encodeReply(r);
    } catch (e) {
      this.s.report(e);
      return encodeReply({ id: r.id, status: 500, error: "internal error" });
    }
    if (json.length > this.s.maxReplyBytes && utf8Length(json) > this.s.maxReplyBytes) {
      this.s.report(new Error(`cometbus: the reply to request ${r.id} is over ${this.s.maxReplyBytes} bytes: not sent`));
      return encodeReply({ id: r.id, status: 500, error: "internal error" });
    }
    return json;
  }

  /** Forgets clients with nothing queued and a full bucket, every few seconds. */
  private sweep(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      for (const [key, q] of this.queues) if (!q.jobs.length && !q.running && q.bucket.full) this.queues.delete(key);
      if (!this.queues.size) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, 5000);
    (this.sweeper as { unref?(): void }).unref?.();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.queues.clear();
  }
}

/** The ledger's key of a client: its id within its identity, as the long-poll slots are. */
export function clientKey(who: Identity): string {
  return JSON.stringify([who.clientId, who.userId ?? null, who.siteId ?? null]);
}

const TIMED_OUT = Symbol("timed out");
/** Not a reply: the ledger could not be read, so nothing ran. */
const STORE_DOWN = "\u0000store down";

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout>;
  const late = new Promise<typeof TIMED_OUT>((r) => (timer = setTimeout(() => r(TIMED_OUT), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A handler's error as the client sees it: a ProtocolError's status and words; anything else, 500 and nothing more. */
function failure(id: number, e: unknown, report: (e: unknown) => void): Reply {
  if (e instanceof ProtocolError) return { id, status: e.status, error: e.message };
  report(e);
  return { id, status: 500, error: "internal error" };
}

function unavailableReply(id: number): Reply {
  return { id, status: 503, error: "the store is unavailable, try again later" };
}
