import { stampRequest } from "../last-request.js";
import type { Message } from "../types.js";
import { BaseTransport } from "./base.js";

type SocketClass = typeof WebSocket;

/**
 * The browser's WebSocket; in Node 22 the global one, in Node 20 the `ws` package. The module name
 * is held in a variable so bundlers leave it out of the browser build.
 */
async function socketClass(): Promise<SocketClass> {
  if (typeof WebSocket !== "undefined") return WebSocket;
  const name = "ws";
  const mod = (await import(/* webpackIgnore: true */ /* @vite-ignore */ name)) as { WebSocket?: SocketClass; default?: SocketClass };
  return (mod.WebSocket ?? mod.default)!;
}

/** Close codes that mean our frames were wrong: retrying soon would only repeat the mistake. */
const OUR_FAULT = [1007, 1008, 1009];
const TRY_AGAIN = 1013;

/**
 * `…/ws`: the server welcomes first; then we subscribe with our positions and the first answer (the
 * backlog, or `[]`) proves the socket leads somewhere. Channels added or removed later travel as
 * subscribe / unsubscribe frames on the same socket.
 */
export class WebSocketTransport extends BaseTransport {
  readonly name = "websocket";
  private ws?: WebSocket;
  private handshake?: ReturnType<typeof setTimeout>;
  /** Channels the server has been asked for on this socket; null until welcomed. */
  private asked: Set<string> | null = null;
  private sentEpoch = "";

  protected connect(): void {
    void this.open(++this.gen);
  }

  private async open(gen: number): Promise<void> {
    const o = this.host.options;
    this.asked = null;
    let answered = false;
    this.handshake = setTimeout(() => {
      if (this.current(gen)) this.give(`not welcomed within ${o.firstChunkTimeout} ms`);
    }, o.firstChunkTimeout);
    let ws: WebSocket;
    try {
      const Socket = await socketClass();
      if (!this.current(gen)) return;
      ws = new Socket(this.wsUrl());
    } catch (e) {
      if (this.current(gen)) this.give(`cannot open: ${e instanceof Error ? e.message : e}`);
      return;
    }
    this.ws = ws;
    this.host.stats.requests++;
    stampRequest();
    ws.onmessage = (ev: MessageEvent) => {
      if (!this.current(gen)) return;
      const text = String(ev.data);
      this.host.stats.frames++;
      this.host.stats.bytes += text.length;
      this.alive(gen);
      let batch: Message[];
      try {
        batch = JSON.parse(text) as Message[];
        if (!Array.isArray(batch)) throw new Error("not an array");
      } catch {
        return this.give("frame is not a JSON array");
      }
      if (!this.asked) {
        // The welcome names the server's epoch, but the subscription must carry the epoch our
        // positions belong to, so the server can tell them apart; the answer brings the new one.
        this.asked = new Set();
        this.sync();
        return;
      }
      this.host.receive(batch, this.sentEpoch);
      if (!answered && this.current(gen)) {
        answered = true;
        clearTimeout(this.handshake);
        this.failures = 0;
        this.events.up(this);
      }
      // Every frame, heartbeats (`[]`) too: a hidden tab's timers may be throttled, its socket is not.
      if (this.current(gen)) this.activity(false);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (!this.current(gen)) return;
      if (ev.code === TRY_AGAIN && answered) {
        // Too slow for the server: reconnect and resume from the backlog.
        this.gen++;
        this.disconnect();
        return this.later(o.minPollInterval);
      }
      this.give(`closed ${ev.code}${ev.reason ? " " + ev.reason : ""}`, OUR_FAULT.includes(ev.code) ? o.maxPollInterval : undefined);
    };
    ws.onerror = () => {
      // A close event follows with the details.
    };
  }

  private wsUrl(): string {
    const base = typeof location !== "undefined" ? location.href : undefined;
    const url = new URL(this.host.url("ws"), base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  /** Brings the socket's channels in line with the subscription. */
  private sync(): void {
    const ws = this.ws;
    const asked = this.asked;
    if (!ws || !asked || ws.readyState !== 1) return;
    const want = this.host.channels();
    const gone = [...asked].filter((ch) => !want.includes(ch));
    if (gone.length) {
      ws.send(JSON.stringify({ unsubscribe: gone }));
      for (const ch of gone) asked.delete(ch);
    }
    const all = this.host.subscription();
    const sub: Record<string, number | string> = { __epoch: all.__epoch };
    let fresh = 0;
    for (const ch of want) {
      if (asked.has(ch)) continue;
      sub[ch] = all[ch];
      asked.add(ch);
      fresh++;
    }
    if (fresh) {
      this.sentEpoch = this.host.epoch;
      ws.send(JSON.stringify({ subscribe: sub }));
    }
  }

  override refresh(): void {
    if (this.running) this.sync();
  }

  private give(why: string, retryAfter?: number): void {
    this.gen++;
    this.disconnect();
    this.events.fail(this, why, retryAfter);
  }

  protected disconnect(): void {
    this.quiet();
    clearTimeout(this.handshake);
    const ws = this.ws;
    this.ws = undefined;
    this.asked = null;
    if (ws) {
      ws.onmessage = ws.onclose = null;
      // Kept as a no-op: the `ws` package throws an 'error' event that nobody listens to.
      ws.onerror = () => {};
      try {
        ws.close(1000);
      } catch {
        // Not open yet: closing a connecting socket may throw in some implementations.
      }
    }
  }

  protected dead(): void {
    this.give("silent for two heartbeats");
  }
}
