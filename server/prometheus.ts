// The bus's metrics in Prometheus's terms (README, "Metrics"), with prom-client. This file is imported
// only once metrics are asked for (bus.metricsRegistry(), GET {base}/metrics), so a bus without
// metrics never loads prom-client; every value is read from plain counters when scraped.
import { Counter, Gauge, type LabelValues, Registry } from "prom-client";
import type { TransportKind } from "./core/subscriber.js";
import type { Tally } from "./core/tally.js";

/** What the metrics read of the bus. */
export interface MetricsSource {
  tally: Tally;
  connections(): Record<TransportKind, number>;
  /** Messages this process received from the store's feed (every process's). */
  received(): number;
  /** New connections and polls refused by load shedding. */
  shed(): number;
  bytesWritten(): number;
  lagMs(): number;
}

type Rows = Iterable<[LabelValues<string>, number]>;

/** Registers the bus's metrics in `registry` (a new one by default) and returns it. */
export function registerMetrics(src: MetricsSource, registry = new Registry()): Registry {
  const t = src.tally;
  const counter = (name: string, help: string, labelNames: string[], rows: () => Rows) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, v] of rows()) this.inc(labels, v);
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], rows: () => Rows) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        for (const [labels, v] of rows()) this.set(labels, v);
      },
    });
  const byTransport = (r: Record<string, number>): Rows => Object.entries(r).map(([transport, v]) => [{ transport }, v]);
  const by = (label: string, r: Record<string, number>): Rows => Object.entries(r).map(([k, v]) => [{ [label]: k }, v]);

  gauge("cometbus_connections", "Subscribers held now, by transport (server: in-process subscribers).", ["transport"], () => byTransport(src.connections()));
  counter("cometbus_messages_published_total", "Messages published through this process and stored.", [], () => [[{}, t.published]]);
  counter("cometbus_messages_received_total", "Messages this process received from the store's feed (every process's publishes).", [], () => [[{}, src.received()]]);
  counter("cometbus_messages_delivered_total", "Live messages handed to subscribers, by transport (backlog pages not counted).", ["transport"], () => byTransport(t.delivered));
  counter("cometbus_bytes_written_total", "Bytes written on the connections that carried the bus's requests, headers and framing included.", [], () => [[{}, src.bytesWritten()]]);
  counter("cometbus_catch_ups_total", "Subscribes that read the backlog (asked a position or the last N), by transport.", ["transport"], () => byTransport(t.catchUps));
  counter("cometbus_resets_total", "Channel positions that could not be honoured, by reason (epoch, trimmed, past-end, bus-reset).", ["reason"], () => by("reason", t.resets));
  counter("cometbus_slow_consumers_cut_total", "Connections cut for not taking what was written to them, by transport.", ["transport"], () => byTransport(t.slowCuts));
  counter("cometbus_store_unavailable_total", "Publishes and subscribes answered 'the store is unavailable'.", ["operation"], () => by("operation", t.storeUnavailable));
  counter("cometbus_publish_failures_total", "Publishes that failed, by reason (store, invalid, closed).", ["reason"], () => by("reason", t.publishFailures));
  counter("cometbus_shed_total", "New connections and polls refused by load shedding.", [], () => [[{}, src.shed()]]);
  gauge("cometbus_event_loop_lag_seconds", "The event loop's worst delay over the last second.", [], () => [[{}, src.lagMs() / 1000]]);
  counter("cometbus_client_fallbacks_total", "Clients' reports of leaving a transport: from, to, reason.", ["from", "to", "reason"], () => fallbackRows(t));
  counter("cometbus_client_proxy_cut_seconds_total", "Seconds the connections that proxy-cut reports name had lived, summed.", [], () => [[{}, t.proxyCutSeconds]]);
  return registry;
}

/** Only the series reported, of a closed set (src/fallback.ts parsed them): at most transports² × reasons. */
function* fallbackRows(t: Tally): Rows {
  for (const [key, n] of t.fallbacks) {
    const [from, to, reason] = key.split(",");
    yield [{ from, to, reason }, n];
  }
}
