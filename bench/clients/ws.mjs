// WebSocket subscribers for every server, each speaking just enough of its protocol.
import WebSocket from "ws";

function socket(url, t, onOpen, onFrame, perMessageDeflate = false) {
  const ws = new WebSocket(url, { perMessageDeflate });
  ws.on("open", () => onOpen(ws));
  ws.on("message", (data) => onFrame(ws, data.toString()));
  ws.on("error", (e) => t.fail(e));
  ws.on("close", () => t.closed());
  return () => ws.terminate();
}

/** cometbus: welcome frame, then the answer to our subscribe confirms it. */
function cometbus({ port, id }, t, perMessageDeflate) {
  let frames = 0;
  return socket(
    `ws://127.0.0.1:${port}/mb/b${id}/ws`,
    t,
    (ws) => ws.send('{"subscribe":{"/bench":0}}'),
    (ws, text) => {
      if (++frames === 2) t.confirm();
      t.scan(text);
    },
    perMessageDeflate,
  );
}

export const cometbusWs = (o, t) => cometbus(o, t, false);
/** As a browser connects: offering permessage-deflate (taken by the server only where it is on). */
export const cometbusWsDeflate = (o, t) => cometbus(o, t, true);

export function bareWs({ port }, t) {
  return socket(`ws://127.0.0.1:${port}/`, t, () => t.confirm(), (ws, text) => t.scan(text));
}

/** nchan registers the subscriber after the handshake; the runner confirms through its channel info. */
export function nchanWs({ port }, t) {
  return socket(`ws://127.0.0.1:${port}/sub`, t, () => {}, (ws, text) => t.scan(text));
}

/** engine.io v4 over WebSocket: `0{…}` open, `40` namespace connect, `2`/`3` ping/pong, `42[…]` events. */
export function socketioWs({ port }, t) {
  return socket(
    `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`,
    t,
    () => {},
    (ws, text) => {
      if (text.startsWith("42")) t.scan(text);
      else if (text === "2") ws.send("3");
      else if (text.startsWith("0")) ws.send("40");
      else if (text.startsWith("40")) t.confirm();
    },
  );
}

/** Bayeux over WebSocket: handshake, subscribe and connect; re-connect whenever a connect returns. */
export function fayeWs({ port }, t) {
  let clientId;
  let n = 0;
  const connect = (ws) =>
    ws.send(JSON.stringify([{ channel: "/meta/connect", clientId, connectionType: "websocket", id: String(++n) }]));
  return socket(
    `ws://127.0.0.1:${port}/faye`,
    t,
    (ws) => ws.send(JSON.stringify([{ channel: "/meta/handshake", version: "1.0", supportedConnectionTypes: ["websocket"], id: "0" }])),
    (ws, text) => {
      t.scan(text);
      if (!text.includes('"/meta/')) return;
      for (const m of JSON.parse(text)) {
        if (m.channel === "/meta/handshake" && m.successful) {
          clientId = m.clientId;
          ws.send(JSON.stringify([{ channel: "/meta/subscribe", clientId, subscription: "/bench", id: String(++n) }]));
          connect(ws);
        } else if (m.channel === "/meta/subscribe" && m.successful) t.confirm();
        else if (m.channel === "/meta/connect") connect(ws);
      }
    },
  );
}
