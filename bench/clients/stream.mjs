// Subscribers that hold one HTTP response open: SSE (cometbus, bare, nchan) and cometbus's chunked long-poll.
import http from "node:http";
import { lineSplitter } from "../lib/tally.mjs";

function stream({ port, agent }, t, { method = "GET", path, headers = {}, body, confirmOnData = true, onEnd }) {
  let req;
  let stopped = false;
  const start = (p = path, b = body) => {
    req = http.request({ host: "127.0.0.1", port, method, path: p, headers, agent }, (res) => {
      res.setEncoding("utf8");
      const feed = lineSplitter((text) => t.scan(text));
      res.on("data", (chunk) => {
        if (confirmOnData) t.confirm();
        feed(chunk);
        onData?.(chunk);
      });
      res.on("end", () => !stopped && onEnd?.(start));
      res.on("error", (e) => !stopped && t.fail(e));
    });
    req.on("error", (e) => !stopped && t.fail(e));
    req.end(b);
  };
  let onData;
  start();
  return {
    stop() {
      stopped = true;
      req.destroy();
    },
    set onData(fn) {
      onData = fn;
    },
  };
}

export function cometbusSse(ctx, t) {
  const s = stream(ctx, t, { path: `/mb/b${ctx.id}/sse?%2Fbench=0` });
  return () => s.stop();
}

export function bareSse(ctx, t) {
  const s = stream(ctx, t, { path: "/sse" });
  return () => s.stop();
}

export function nchanSse(ctx, t) {
  const s = stream(ctx, t, { path: "/sub", headers: { Accept: "text/event-stream" }, confirmOnData: false });
  return () => s.stop();
}

/** message_bus's chunked long-poll: chunks `[…]\r\n|\r\n`; re-polls from the last id when the response ends. */
export function cometbusChunked(ctx, t) {
  let last = 0;
  const body = () => `{"/bench":${last}}`;
  const s = stream(ctx, t, {
    method: "POST",
    path: `/mb/b${ctx.id}/poll`,
    headers: { "Content-Type": "application/json" },
    body: body(),
    onEnd: (again) => again(`/mb/b${ctx.id}/poll`, body()),
  });
  const ID = /"message_id":(\d+),"channel":"\/bench"/g;
  s.onData = (chunk) => {
    for (const m of chunk.matchAll(ID)) last = Math.max(last, Number(m[1]));
  };
  return () => s.stop();
}
