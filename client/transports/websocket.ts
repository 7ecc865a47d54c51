import { reportFallback, withFallback } from "../http.js";
import { stampRequest } from "../last-request.js";
import { REPLY_CHANNEL, type Reply } from "../../src/request.js";
import { hintsOf, reasonMs } from "../hints.js";
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
/** Going away (1001), service restart (1012): the server moves us, on purpose. */
const MOVE = [1001, 1012];
const TRY_AGAIN = 1013;

const isReply = (m: Message) => !!m && m.channel === REPLY_CHANNEL;

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
  private sentClients: number | string | undefined;

  protected connect(): void {
    void this.open(++this.gen);
  }

  private async open(gen: number): Promise<void> {
    const o = this.host.options;
    this.asked = null;
    let answered = false;
    let upAt = 0;
    // A socket that opened but says nothing leads nowhere (a proxy that accepted the upgrade and
    // forwards nothing): given up at once. One not even open yet may be a busy server: a second
    // chance, twice as long, while HTTP delivers (docs/protocol.md#65-websocket).
    const deadline = (ms: number, second: boolean) =>
      setTimeout(() => {
        if (!this.current(gen)) return;
        if (second || this.ws?.readyState === 1) this.give(`not welcomed within ${o.firstChunkTimeout} ms${second ? " (not even opened)" : ""}`);
        else this.handshake = deadline(2 * ms, true);
      }, ms);
    this.handshake = deadline(o.firstChunkTimeout, false);
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
      if (batch.some(isReply)) {
        // Replies to our requests: not messages, and not the answer that proves the socket.
        for (const m of batch) if (isReply(m)) this.host.reply(m.data as Reply);
        if (!this.current(gen)) return;
        batch = batch.filter((m) => !isReply(m));
        if (!batch.length) return this.activity(false);
      }
      // How widely to spread a reconnection if this socket is ever cut: in the welcome, and again
      // in a heartbeat whenever the server has filled up or emptied since.
      const { spread } = hintsOf(batch);
      if (spread !== undefined) this.host.spreadMs = spread;
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
        upAt = Date.now();
        clearTimeout(this.handshake);
        this.failures = 0;
        this.events.up(this);
      }
      // Every frame, heartbeats (`[]`) too: a hidden tab's timers may be throttled, its socket is not.
      if (this.current(gen)) this.activity(false);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (!this.current(gen)) return;
      // Moved (a drain, a shutdown): back within the hint, on this transport; nothing failed.
      if (MOVE.includes(ev.code)) return this.moveOn(reasonMs(ev.reason, "within") ?? this.host.spreadMs);
      if (ev.code === TRY_AGAIN) {
        // Refused for now (overloaded): back after the time it named.
        const retry = reasonMs(ev.reason, "retry after");
        if (retry !== null) return this.comeBackAfter(retry);
        // Too slow for the server: reconnect and resume from the backlog.
        if (answered) return this.moveOn(o.minPollInterval);
      }
      // A socket that worked, cut without a word (a crash, a proxy): back on this transport, spread;
      // only if it cannot even be opened again does the transport give way.
      if (answered && !OUR_FAULT.includes(ev.code)) {
        reportFallback(this.host, { from: "websocket", to: "websocket", reason: "proxy-cut", seconds: (Date.now() - upAt) / 1000 });
        return this.cutAfterWorking();
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
    return withFallback(this.host, url.href);
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
    // A socket shared by tabs names the client ids it speaks for again whenever they change.
    if (all.__clients !== undefined && all.__clients !== this.sentClients) {
      sub.__clients = this.sentClients = all.__clients;
      fresh++;
    }
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

  /** A frame of requests, on this socket if it is up (welcomed); false when it cannot take it. */
  sendFrame(frame: string): boolean {
    if (!this.running || !this.ws || this.ws.readyState !== 1 || this.asked === null) return false;
    this.ws.send(frame);
    return true;
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
    this.sentClients = undefined;
    if (ws) {
      // Requests it carried unanswered go again on whatever carries next, with the same ids.
      this.host.socketClosed();
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
