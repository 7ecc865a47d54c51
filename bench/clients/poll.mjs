// Subscribers that ask again after every answer: long-polls (cometbus, bare, nchan, faye) and
// socket.io's polling transport without upgrade.
import http from "node:http";

function request({ port, agent }, { method = "GET", path, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent }, (res) => {
      res.setEncoding("utf8");
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Runs `step` in a loop until stopped; a failed request is counted and retried after a pause. */
function loop(t, step) {
  let stopped = false;
  (async () => {
    while (!stopped) {
      try {
        await step(() => stopped);
      } catch (e) {
        if (stopped) return;
        t.fail(e);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  return () => (stopped = true);
}

/** message_bus long-poll with `Dont-Chunk`: one JSON array per answer; positions from envelopes and status. */
export function cometbusLongPoll(ctx, t) {
  let last = 0;
  const path = `/mb/b${ctx.id}/poll`;
  const headers = { "Content-Type": "application/json", "Dont-Chunk": "true" };
  return loop(t, async () => {
    const r = await request(ctx, { method: "POST", path, headers, body: `{"/bench":${last}}` });
    if (r.status !== 200) throw new Error(`poll ${r.status}: ${r.text}`);
    t.scan(r.text);
    for (const m of JSON.parse(r.text)) {
      if (m.channel === "/bench") last = Math.max(last, m.message_id);
      else if (m.channel === "/__status" && typeof m.data["/bench"] === "number") last = m.data["/bench"];
    }
  });
}

/** message_bus polling (`?dlp=t`), every `interval` ms. */
export function cometbusPoll(ctx, t, interval = 1000) {
  let last = 0;
  const path = `/mb/b${ctx.id}/poll?dlp=t`;
  const headers = { "Content-Type": "application/json" };
  return loop(t, async () => {
    const r = await request(ctx, { method: "POST", path, headers, body: `{"/bench":${last}}` });
    t.confirm();
    t.scan(r.text);
    for (const m of JSON.parse(r.text)) if (m.channel === "/bench") last = Math.max(last, m.message_id);
    await new Promise((res) => setTimeout(res, interval));
  });
}

export function bareLongPoll(ctx, t) {
  let last = 0;
  return loop(t, async () => {
    const r = await request(ctx, { path: `/lp?since=${last}` });
    t.scan(r.text);
    last = Number(r.headers["x-last"]);
  });
}

/** nchan long-poll: the next request names the last message it got (Last-Modified + Etag). */
export function nchanLongPoll(ctx, t) {
  const headers = {};
  return loop(t, async () => {
    const r = await request(ctx, { path: "/sub", headers });
    if (r.status === 200) {
      t.scan(r.text);
      headers["If-Modified-Since"] = r.headers["last-modified"];
      headers["If-None-Match"] = r.headers["etag"];
    } else if (r.status !== 304 && r.status !== 408) throw new Error(`nchan ${r.status}`);
  });
}

/** Bayeux long-polling: handshake, subscribe, then `/meta/connect` answers carry the messages. */
export function fayeLongPoll(ctx, t) {
  let clientId;
  let n = 0;
  const post = (msgs) =>
    request(ctx, { method: "POST", path: "/faye", headers: { "Content-Type": "application/json" }, body: JSON.stringify(msgs) });
  return loop(t, async () => {
    if (!clientId) {
      const hs = JSON.parse((await post([{ channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: ["long-polling"], id: "0" }])).text);
      clientId = hs[0].clientId;
      const sub = JSON.parse((await post([{ channel: "/meta/subscribe", clientId, subscription: "/bench", id: String(++n) }])).text);
      if (!sub[0].successful) throw new Error("faye subscribe failed");
      t.confirm();
    }
    const r = await post([{ channel: "/meta/connect", clientId, connectionType: "long-polling", id: String(++n) }]);
    t.scan(r.text);
  });
}

/** engine.io v4 polling, never upgraded: packets separated by \x1e; `2` ping answered by POST `3`. */
export function socketioPolling(ctx, t) {
  let sid;
  const base = "/socket.io/?EIO=4&transport=polling";
  const send = (text) => request(ctx, { method: "POST", path: `${base}&sid=${sid}`, headers: { "Content-Type": "text/plain" }, body: text });
  return loop(t, async () => {
    if (!sid) {
      const open = await request(ctx, { path: base });
      sid = JSON.parse(open.text.slice(1)).sid;
      await send("40");
    }
    const r = await request(ctx, { path: `${base}&sid=${sid}` });
    if (r.status !== 200) throw new Error(`engine.io ${r.status}: ${r.text}`);
    for (const p of r.text.split("\x1e")) {
      if (p.startsWith("42")) t.scan(p);
      else if (p === "2") await send("3");
      else if (p.startsWith("40")) t.confirm();
    }
  });
}
