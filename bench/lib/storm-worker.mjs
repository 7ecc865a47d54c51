// One client process of the deploy-storm bench (bench/storm.mjs): runs its share of real cometbus
// clients (ROOT/dist/client/index.js, default negotiation) and counts, per client and channel, what
// each received. Message ids must be contiguous from 1: an id at or below the highest seen is a
// duplicate when it was seen before, out of order when it fills a hole; holes left at the end (and
// ids missing after the highest seen, up to the channel's last id) are lost.
//
// Driven over IPC by the coordinator:
//   { type: "start", root, baseUrl, clients: [{ id, channels }], batch, pauseMs, cold }
//   { type: "arm" }                     the cut is near: keep every receipt's stamp until T0 is known
//   { type: "cut", t0 }                 T0 (nowMs): recovery is the first message stamped at or after it
//   { type: "final", last, waitMs }     waits until every client reached `last` (channel → id), then
//                                       answers { type: "result", clients: [...] }
//   { type: "stop" }                    stops every client and exits
// and reports { type: "progress", … } every 250 ms.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { nowMs } from "./tcp-forwarder.mjs";

const STABLE_MS = 3000;
const RANK = { websocket: 0, sse: 1, "long-poll": 2, poll: 3 };

/** Per channel: highest id seen, holes below it, and what went wrong. */
class ChannelTally {
  max = 0;
  holes = new Set();
  received = 0;
  duplicated = 0;
  outOfOrder = 0;

  take(id) {
    this.received++;
    if (id === this.max + 1) this.max = id;
    else if (id > this.max + 1) {
      for (let k = this.max + 1; k < id; k++) this.holes.add(k);
      this.max = id;
    } else if (this.holes.delete(id)) this.outOfOrder++;
    else this.duplicated++;
  }

  lost(last) {
    return this.holes.size + Math.max(0, last - this.max);
  }
}

class Client {
  constructor(MessageBus, baseUrl, spec) {
    this.id = spec.id;
    this.channels = spec.channels;
    this.tally = new Map(spec.channels.map((c) => [c, new ChannelTally()]));
    this.firstAt = null;
    this.transport = null;
    this.changedAt = nowMs();
    this.history = []; // [nowMs, transport] for every change
    this.pending = []; // [stamp, nowMs, transport] between "arm" and "cut"
    this.recoveredAt = null;
    this.recoveredOn = null;
    this.bus = new MessageBus({ baseUrl });
    this.failures = []; // [nowMs, transport, why, was it the active one]
    watchFailures(this);
    this.resets = 0; // onReset: the server said a position was not honoured (a new epoch, trimmed)
    this.bus.onReset(() => this.resets++);
    this.bus.onTransport((name) => {
      this.transport = name;
      this.changedAt = nowMs();
      this.history.push([this.changedAt, name]);
    });
    for (const ch of spec.channels) {
      const t = this.tally.get(ch);
      this.bus.subscribe(
        ch,
        (data, _globalId, messageId) => {
          const at = nowMs();
          if (this.firstAt === null) this.firstAt = at;
          t.take(messageId);
          if (this.recoveredAt !== null || !state.armed || !data) return;
          if (state.t0 === null) this.pending.push([data.t, at, this.bus.transport]);
          else if (data.t >= state.t0) {
            this.recoveredAt = at;
            this.recoveredOn = this.bus.transport;
          }
        },
        0,
      );
    }
  }

  /** T0 is known: the receipts kept since "arm" may hold the first message stamped after it. */
  cut(t0) {
    this.atT0 = this.transportAt(t0);
    const first = this.pending.find(([stamp]) => stamp >= t0);
    if (first) [, this.recoveredAt, this.recoveredOn] = first;
    this.pending = [];
  }

  /** The transport at `t` (nowMs). */
  transportAt(t) {
    let name = null;
    for (const [at, n] of this.history) if (at <= t) name = n;
    return name;
  }

  stable(now) {
    return this.firstAt !== null && this.transport !== null && now - this.changedAt >= STABLE_MS;
  }

  reached(last) {
    for (const [ch, t] of this.tally) if (t.max < (last[ch] ?? 0) || t.holes.size) return false;
    return true;
  }

  result(last) {
    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    let received = 0;
    const bad = [];
    for (const [ch, t] of this.tally) {
      const l = t.lost(last[ch] ?? 0);
      lost += l;
      duplicated += t.duplicated;
      outOfOrder += t.outOfOrder;
      received += t.received;
      if (l || t.duplicated || t.outOfOrder) bad.push({ channel: ch, last: last[ch] ?? 0, max: t.max, holes: t.holes.size, lost: l, duplicated: t.duplicated, outOfOrder: t.outOfOrder });
    }
    const t0 = state.t0 ?? Infinity;
    return {
      id: this.id,
      atT0: this.atT0 ?? null,
      end: this.bus.transport,
      // [ms after T0, transport] for every change after the cut
      events: this.history.filter(([at]) => at > t0).map(([at, n]) => [round(at - t0), n]),
      failures: this.failures.filter(([at]) => at > t0).map(([at, n, why, active]) => [round(at - t0), n, why, active]),
      recoveredMs: this.recoveredAt === null ? null : round(this.recoveredAt - t0),
      recoveredOn: this.recoveredOn,
      received,
      resets: this.resets,
      lost,
      duplicated,
      outOfOrder,
      bad,
      stats: { ...this.bus.stats },
    };
  }
}

/**
 * Diagnostics only: why a transport gave up (the negotiator's `fail(transport, why)`), read by
 * wrapping the client's private negotiator where it has one. Nothing depends on it.
 */
function watchFailures(client) {
  const n = client.bus.negotiator;
  if (!n || typeof n.fail !== "function") return;
  const fail = n.fail.bind(n);
  n.fail = (t, why, ...rest) => {
    if (client.failures.length < 50) client.failures.push([nowMs(), t?.name, String(why).slice(0, 120), t === n.active]);
    return fail(t, why, ...rest);
  };
}

/** Diagnostics only: why fetches failed after the cut (undici's "fetch failed" hides it in `cause`). */
const fetchErrors = {};
const plainFetch = globalThis.fetch;
globalThis.fetch = async (...a) => {
  try {
    return await plainFetch(...a);
  } catch (e) {
    if (state.t0 !== null && e?.name !== "AbortError") {
      const c = e?.cause;
      const k = `${e?.message}: ${c?.code ?? c?.name ?? ""} ${String(c?.message ?? "").slice(0, 80)}`.trim();
      fetchErrors[k] = (fetchErrors[k] ?? 0) + 1;
    }
    throw e;
  }
};

const round = (ms) => Math.round(ms * 10) / 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const state = { armed: false, t0: null };
const clients = [];
let timer;

function progress() {
  const now = nowMs();
  const transports = {};
  let received = 0;
  let stable = 0;
  let recovered = 0;
  let back = 0;
  for (const c of clients) {
    const name = c.transport ?? "none";
    transports[name] = (transports[name] ?? 0) + 1;
    if (c.firstAt !== null) received++;
    if (c.stable(now)) stable++;
    if (c.recoveredAt !== null) recovered++;
    // back on its T0 transport, or a better one
    if (state.t0 !== null && c.transport !== null && RANK[c.transport] <= (RANK[c.atT0] ?? 0)) back++;
  }
  return { type: "progress", opened: clients.length, received, stable, recovered, back, transports };
}

async function start({ root, baseUrl, clients: specs, batch = 50, pauseMs = 100, cold = false }) {
  const { MessageBus } = await import(pathToFileURL(join(root, "dist/client/index.js")).href);
  timer = setInterval(() => process.send(progress()), 250);
  // One client first, until its negotiation settled (on WebSocket, or 5 s): the client remembers
  // per origin what worked (in memory in Node, localStorage in a browser), so the others start where
  // a returning visitor would, instead of N cold starts on long-poll probing upwards at once.
  clients.push(new Client(MessageBus, baseUrl, specs[0]));
  const until = nowMs() + 5000;
  while (!cold && nowMs() < until && !(clients[0].transport === "websocket" && clients[0].firstAt !== null)) await sleep(50);
  for (let i = 1; i < specs.length; i++) {
    clients.push(new Client(MessageBus, baseUrl, specs[i]));
    if (i % batch === 0) await sleep(pauseMs);
  }
}

async function final({ last, waitMs }) {
  const end = nowMs() + waitMs;
  while (nowMs() < end && !clients.every((c) => c.reached(last))) await sleep(100);
  process.send({ type: "result", clients: clients.map((c) => c.result(last)), fetchErrors });
}

process.on("message", (m) => {
  if (m.type === "start") start(m).catch((e) => process.send({ type: "error", error: String(e?.stack ?? e) }));
  else if (m.type === "arm") state.armed = true;
  else if (m.type === "cut") {
    state.t0 = m.t0;
    for (const c of clients) c.cut(m.t0);
  } else if (m.type === "final") final(m);
  else if (m.type === "stop") {
    clearInterval(timer);
    for (const c of clients) c.bus.stop();
    setTimeout(() => process.exit(0), 200);
  }
});
process.on("disconnect", () => process.exit(0));
// A client's stray rejection must not end the process that holds the others.
process.on("unhandledRejection", (e) => process.send?.({ type: "warning", warning: String(e?.stack ?? e) }));
