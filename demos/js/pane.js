// One pane of the comparison page: a client of its own, what it received, and how that looks.

import { now } from "./api.js";
import { drawLatencyChart } from "./chart.js";
import { bytes, count, ms } from "./format.js";
import { Tally } from "./tally.js";

export class Pane {
  /**
   * spec: { id, name, note, options } — options go to `new MessageBus` (transports etc.).
   * ctx: { channel, startId, template, container, log, onRender }
   */
  constructor(spec, ctx) {
    this.spec = spec;
    this.ctx = ctx;
    this.tally = new Tally(ctx.startId);
    this.el = ctx.template.content.firstElementChild.cloneNode(true);
    this.el.dataset.pane = spec.id;
    this.el.querySelector(".name").textContent = spec.name;
    this.el.querySelector(".note").textContent = spec.note;
    this.fields = Object.fromEntries([...this.el.querySelectorAll("[data-k]")].map((e) => [e.dataset.k, e]));
    this.canvas = this.el.querySelector(".chart");
    ctx.container.append(this.el);
    this.shown = -1;
    this.timer = 0;
  }

  start() {
    const { channel, startId, log } = this.ctx;
    // Each pane shows its own transport: the panes of one page must not share a connection.
    const bus = new window.MessageBus({ baseUrl: "/", shareTabs: false, ...this.spec.options });
    this.bus = bus;
    bus.onTransport((name) => {
      this.transport = name;
      this.el.dataset.live = "true";
      if (this.spec.negotiates) log(`${this.spec.name} pane is now on ${name}`);
      this.schedule();
    });
    bus.onReset((ch) => {
      if (ch !== channel) return;
      this.tally.reset();
      log(`${this.spec.name} pane: the backlog restarted (new epoch), counting from id 1`);
      this.schedule();
    });
    bus.subscribe(
      channel,
      (data, _globalId, messageId) => {
        const verdict = this.tally.add(data, messageId, now());
        if (verdict !== "ok") log(`${this.spec.name} pane: ${verdict} message at id ${messageId}`, "bad");
        this.schedule();
      },
      startId,
    );
    bus.start();
    // Requests, frames and bytes change without messages (heartbeats, reconnects): refresh now and then.
    setInterval(() => this.schedule(), 1000);
  }

  /** Renders at most every 50 ms however fast messages come. */
  schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = 0;
      this.render();
    }, 50);
  }

  render() {
    const t = this.tally;
    const f = this.fields;
    const stats = this.bus?.stats ?? {};
    const transport = this.bus?.transport ?? this.transport;
    if (transport) this.el.dataset.live = "true";
    // A forced pane's transport is its name; what is worth showing is whether it is connected.
    f.transport.dataset.transport = transport ?? "";
    f.transport.textContent = !transport ? "connecting" : this.spec.negotiates ? transport : "live";
    if (this.spec.negotiates) {
      const switches = stats.transportSwitches ?? 0;
      this.el.querySelector(".note").textContent = `on ${transport ?? "…"} · ${switches} switch${switches === 1 ? "" : "es"}`;
    }
    f.received.textContent = count(t.received);
    f.last.textContent = ms(t.last);
    const [median, p99] = t.percentiles([50, 99]);
    f.median.textContent = ms(median);
    f.p99.textContent = ms(p99);
    f.requests.textContent = count(stats.requests);
    f.frames.textContent = count(stats.frames);
    f.bytes.textContent = bytes(stats.bytes);
    f.lost.textContent = count(t.lost);
    f.duplicates.textContent = count(t.duplicates);
    f.lost.parentElement.dataset.bad = String(t.lost > 0);
    f.duplicates.parentElement.dataset.bad = String(t.duplicates > 0);
    f.resets.textContent = t.resets ? `${t.resets} epoch reset${t.resets === 1 ? "" : "s"}` : "";
    if (t.received !== this.shown) {
      this.shown = t.received;
      this.el.classList.remove("flash");
      void this.el.offsetWidth; // restart the animation
      this.el.classList.add("flash");
      drawLatencyChart(this.canvas, t.latencies, this.color());
    }
    this.ctx.onRender?.();
  }

  redrawChart() {
    drawLatencyChart(this.canvas, this.tally.latencies, this.color());
  }

  color() {
    return (this.colorValue ??= getComputedStyle(this.el).getPropertyValue("--c").trim() || "#2563eb");
  }
}
