// The chat room: one channel for what is said (private lines targeted with userIds), one for
// who is here and who is typing. Who you are is a cookie the server's userIdLookup reads.
// Lines go to the server as requests (`bus.request("say")`: the server's handler says who spoke and
// publishes them); presence and typing are client publishes (`bus.publish`), which the demo
// server's clientPublish allows on the presence channel, in your own name only.

import { clock } from "./format.js";

const ROOM = "/chat/room";
const PRESENCE = "/chat/presence";
const HISTORY = -31; // the last 30 lines of the room when joining
const PRESENCE_REPLAY = -21; // a newcomer learns who is here from the last 20 presence events
const HERE_EVERY = 20_000;
const GONE_AFTER = 45_000;
const TYPING_SHOWN = 3_000;

const $ = (id) => document.getElementById(id);
const people = new Map(); // name → last seen (ms)
const typing = new Map(); // name → until (ms)
let me = "";
let shownPeople = "";
let bus;

/** A name is also the user id the server targets: trimmed, single-spaced, at most 24 characters. */
function cleanName(raw) {
  return raw.replace(/\s+/g, " ").trim().slice(0, 24);
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${h} 62% 42%)`;
}

function showMessage(m) {
  const list = $("messages");
  list.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.className = "msg";
  if (m.from === me) li.classList.add("mine");
  if (m.to) li.classList.add("private");
  li.style.setProperty("--who", hue(m.from));
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = m.from === me ? "You" : m.from;
  const when = document.createElement("time");
  when.textContent = clock(new Date(m.sentAt)).slice(0, 5);
  meta.append(who, when);
  if (m.to) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = m.from === me ? `private to ${m.to}` : "private to you";
    meta.append(badge);
  }
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = m.text;
  li.append(meta, text);
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom || m.from === me) list.scrollTop = list.scrollHeight;
}

function renderPeople() {
  const t = Date.now();
  for (const [name, seen] of people) if (t - seen > GONE_AFTER && name !== me) people.delete(name);
  const names = [...people.keys()].sort((a, b) => (a === me ? -1 : b === me ? 1 : a.localeCompare(b)));
  const to = $("to");
  const chosen = to.value;
  // Rebuilding an open <select> closes it on phones: only when someone came or went.
  const key = `${names.join("\n")}\n→${chosen}`;
  if (key === shownPeople) return;
  shownPeople = key;
  $("people").replaceChildren(
    ...names.map((name) => {
      const li = document.createElement("li");
      li.dataset.name = name;
      const b = document.createElement("button");
      b.type = "button";
      b.style.setProperty("--who", hue(name));
      b.setAttribute("aria-pressed", String(name === chosen));
      const avatar = document.createElement("span");
      avatar.className = "avatar";
      avatar.textContent = [...name][0].toUpperCase();
      b.append(avatar, document.createTextNode(name));
      if (name === me) {
        const you = document.createElement("span");
        you.className = "you";
        you.textContent = "(you)";
        b.append(you);
        b.disabled = true;
      }
      b.addEventListener("click", () => {
        to.value = to.value === name ? "" : name;
        renderPeople();
        $("text").focus();
      });
      li.append(b);
      return li;
    }),
  );
  const others = names.filter((n) => n !== me);
  to.replaceChildren(new Option("Everyone", ""), ...others.map((n) => new Option(`🔒 ${n}`, n)));
  to.value = others.includes(chosen) ? chosen : "";
}

function renderTyping() {
  const t = Date.now();
  const names = [...typing].filter(([n, until]) => until > t && n !== me).map(([n]) => n);
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…` : "";
}

function onPresence(p) {
  if (!p || typeof p.from !== "string" || typeof p.at !== "number") return;
  // Joining replays the last few presence events; the old ones say nothing about now.
  const age = Date.now() - p.at;
  if (age > GONE_AFTER) return;
  if (p.type === "leave") {
    people.delete(p.from);
    typing.delete(p.from);
  } else {
    people.set(p.from, Math.max(people.get(p.from) ?? 0, p.at));
    if (p.type === "typing") typing.set(p.from, p.at + TYPING_SHOWN);
    if (p.type === "hello" && p.from !== me && age < 5000) sayHere();
  }
  renderPeople();
  renderTyping();
}

let lastHere = 0;
function sayHere() {
  // A newcomer's hello is answered by everyone; once per second is enough.
  if (Date.now() - lastHere < 1000) return;
  lastHere = Date.now();
  bus.publish(PRESENCE, { type: "here", from: me, at: Date.now() }).catch(() => {});
}

let lastTyping = 0;
function sayTyping() {
  if (Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  bus.publish(PRESENCE, { type: "typing", from: me, at: Date.now() }).catch(() => {});
}

async function send(e) {
  e.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  const to = $("to").value;
  input.value = "";
  // Once, in order, whatever the connection does meanwhile; the server answers when it is published.
  // A private line is targeted there: only the recipient's and the sender's connections receive it.
  await bus.request("say", to ? { text, to } : { text });
  typing.delete(me);
}

function join(name) {
  me = name;
  sessionStorage.setItem("cometbus-chat-name", me);
  $("join").hidden = true;
  $("room").hidden = false;
  $("me").textContent = me;
  $("messages").innerHTML = '<li class="empty">No messages yet. Say hello, then open this page in a second window as someone else.</li>';

  const clientId = `chat-${Math.random().toString(36).slice(2, 12)}`;
  // Each window is its own person (the cookie below is scoped to its client id), so windows must not
  // share one connection: a shared one would speak as the leader window's person (README, "Tabs").
  bus = new window.MessageBus({ baseUrl: "/", clientId, shareTabs: false });
  // The server's demo userIdLookup reads this cookie. Scoped to this window's client id, so two
  // windows of one browser can be two different people.
  const id = bus.clientId ?? clientId;
  document.cookie = `demo_user=${encodeURIComponent(me)}; path=/message-bus/${id}/; SameSite=Strict`;
  bus.onTransport((t) => ($("transport").textContent = `via ${t}`));
  bus.subscribe(ROOM, (m) => m && m.type === "say" && showMessage(m), HISTORY);
  bus.subscribe(PRESENCE, onPresence, PRESENCE_REPLAY);
  bus.start();

  people.set(me, Date.now());
  renderPeople();
  bus.publish(PRESENCE, { type: "hello", from: me, at: Date.now() }).catch(() => {});
  setInterval(sayHere, HERE_EVERY);
  setInterval(() => {
    renderPeople();
    renderTyping();
  }, 1000);
  // The page's last word: a request might not leave a page that is going away, a keepalive fetch does.
  const leave = () =>
    fetch("/demo/publish", {
      method: "POST",
      keepalive: true,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ channel: PRESENCE, data: { type: "leave", from: me, at: Date.now() } }),
    });
  addEventListener("pagehide", leave);
  $("leave").addEventListener("click", () => {
    sessionStorage.removeItem("cometbus-chat-name");
    location.reload(); // pagehide says goodbye
  });
  $("composer").addEventListener("submit", (e) => send(e).catch((err) => alert(err.message)));
  $("text").addEventListener("input", sayTyping);
  $("text").focus();
}

if (typeof window.MessageBus !== "function") {
  $("join").replaceChildren("The browser client is missing: run `npm run build`, then reload.");
} else {
  $("join").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = cleanName($("name").value);
    if (name) join(name);
  });
  const saved = sessionStorage.getItem("cometbus-chat-name");
  if (saved) join(saved);
  else $("name").focus();
}
