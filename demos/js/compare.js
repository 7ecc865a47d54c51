// The comparison page: five clients on one channel, the buttons that publish and break things,
// and a verdict on whether every pane saw the same messages.

import { drop, lastId, now, publish, resetEpoch } from "./api.js";
import { clock } from "./format.js";
import { Pane } from "./pane.js";

const CHANNEL = "/demo/compare";
const BURST = 100;

// A forced pane has nowhere to fall back to, so after a broken connection it tries again within
// a second: retryTransportInterval (default 10 s) suits a negotiating client that falls back
// meanwhile, and callbackInterval (message_bus's 15 s) is also the pause after an HTTP error and
// the polling pane's period. alwaysLongPoll keeps it on its transport while the tab is hidden
// (by default a hidden tab drops to slow polling, as the negotiating pane shows).
const FORCED = { retryTransportInterval: 1000, callbackInterval: 1000, alwaysLongPoll: true };
const PANES = [
  { id: "websocket", name: "WebSocket", note: "one socket, frames pushed", options: { ...FORCED, transports: ["websocket"] } },
  { id: "sse", name: "SSE", note: "one long event stream", options: { ...FORCED, transports: ["sse"] } },
  { id: "long-poll", name: "Long-poll", note: "a held request per batch", options: { ...FORCED, transports: ["long-poll"] } },
  { id: "poll", name: "Polling", note: "asks every second", options: { ...FORCED, transports: ["poll"] } },
  { id: "auto", name: "Negotiating", note: "default client", negotiates: true, options: {} },
];

const $ = (id) => document.getElementById(id);
const pageId = Math.random().toString(36).slice(2, 10);
let seq = 0;
let published = 0;
let panes = [];

function log(text, tone) {
  const li = document.createElement("li");
  if (tone) li.dataset.tone = tone;
  const time = document.createElement("time");
  time.textContent = clock();
  li.append(time, document.createTextNode(text));
  $("log").prepend(li);
  while ($("log").children.length > 60) $("log").lastChild.remove();
}

async function send(count) {
  const data = { uid: `${pageId}.${++seq}`, sentAt: now() };
  await publish(CHANNEL, data, { count });
  published += count;
}

function verdict() {
  const el = $("verdict");
  if (!panes.length) return;
  const counts = panes.map((p) => p.tally.received);
  const bad = panes.filter((p) => p.tally.lost || p.tally.duplicates);
  const live = panes.filter((p) => p.el.dataset.live === "true").length;
  let state;
  let text;
  if (bad.length) {
    state = "bad";
    text = `✗ ${bad.map((p) => p.spec.name).join(", ")}: messages lost or doubled`;
  } else if (live < panes.length) {
    state = "idle";
    text = `Connecting… ${live} of ${panes.length} panes live`;
  } else if (Math.min(...counts) !== Math.max(...counts)) {
    state = "busy";
    text = `Catching up… ${Math.min(...counts)} – ${Math.max(...counts)} messages per pane`;
  } else if (counts[0] === 0) {
    state = "idle";
    text = "All panes live. Publish something.";
  } else {
    state = "ok";
    text = `✓ All ${panes.length} panes agree: ${counts[0].toLocaleString("en-US")} messages each, none lost, none doubled`;
  }
  if (el.dataset.state !== state || el.textContent !== text) {
    el.dataset.state = state;
    el.textContent = text;
  }
}

function button(id, action) {
  $(id).addEventListener("click", async () => {
    try {
      await action();
    } catch (e) {
      log(`${$(id).textContent}: ${e.message}`, "bad");
    }
  });
}

function wireControls() {
  button("publish-one", () => send(1));
  button("publish-burst", () => send(BURST));

  let steady = 0;
  const stopSteady = () => {
    clearInterval(steady);
    steady = 0;
    $("steady").setAttribute("aria-pressed", "false");
    $("steady").textContent = "▶ Steady";
  };
  const startSteady = () => {
    const rate = Number($("rate").value);
    // Fast rates go out in small batches: a browser allows only a few requests at once per host.
    const tick = Math.max(50, 1000 / rate);
    const perTick = Math.max(1, Math.round((rate * tick) / 1000));
    steady = setInterval(() => send(perTick).catch((e) => log(`publish: ${e.message}`, "bad")), tick);
    $("steady").setAttribute("aria-pressed", "true");
    $("steady").textContent = "■ Stop";
    log(`Publishing a steady ${rate} messages per second`);
  };
  button("steady", () => (steady ? stopSteady() : startSteady()));
  $("rate").addEventListener("change", () => {
    if (!steady) return;
    stopSteady();
    startSteady();
  });

  button("drop-ws", async () => {
    const n = await drop("websocket");
    log(`Dropped ${n} WebSocket connection${n === 1 ? "" : "s"} without a close frame: watch them reconnect and catch up`);
  });
  button("cut-streams", async () => {
    const n = await drop("streams");
    log(`Cut ${n} stream${n === 1 ? "" : "s"} (SSE, chunked long-poll) mid-response: they resume from their positions`);
  });
  button("drop-polls", async () => {
    const n = await drop("polls");
    log(`Cut ${n} held long-poll${n === 1 ? "" : "s"}: the next poll asks from where the last one stopped`);
  });
  button("reset-epoch", async () => {
    const { epoch } = await resetEpoch();
    log(`Reset the backlog: new epoch ${epoch}, ids start again at 1 and every client is told`);
  });
}

async function main() {
  if (typeof window.MessageBus !== "function") {
    $("verdict").dataset.state = "bad";
    $("verdict").textContent = "The browser client is missing: run `npm run build`, then reload.";
    return;
  }
  wireControls();
  const startId = await lastId(CHANNEL);
  const ctx = { channel: CHANNEL, startId, template: $("pane-template"), container: $("panes"), log, onRender: verdict };
  panes = PANES.map((spec) => new Pane(spec, ctx));
  for (const p of panes) p.start();
  for (const p of panes) p.render();
  window.addEventListener("resize", () => panes.forEach((p) => p.redrawChart()));
  // For the curious, from the console: the panes and their tallies.
  window.demo = { panes, published: () => published };
  log(`Subscribed five clients to ${CHANNEL} from id ${startId}`);
}

main().catch((e) => log(`Could not start: ${e.message}`, "bad"));
