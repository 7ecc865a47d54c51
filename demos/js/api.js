// The demo server's own routes (server/demo.ts): publish, and the buttons that break things.

async function call(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(json.error || `HTTP ${res.status}`);
  return json;
}

/** Publishes `data` (a burst when count > 1: each copy gets its index `i`). */
export function publish(channel, data, { count = 1, userIds } = {}) {
  return call("POST", "/demo/publish", { channel, data, count, user_ids: userIds });
}

/** Where a channel stands now: subscribing from here means nothing published later is missed. */
export async function lastId(channel) {
  return (await call("GET", `/demo/last-id?channel=${encodeURIComponent(channel)}`)).last_id;
}

/** Cuts every connection of a kind (websocket, streams, long-poll…) without a goodbye. */
export async function drop(kind) {
  return (await call("POST", `/demo/drop?kind=${encodeURIComponent(kind)}`)).dropped;
}

export function resetEpoch() {
  return call("POST", "/demo/reset");
}

/** Milliseconds with sub-millisecond precision on a clock every pane of the page shares. */
export const now = () => performance.timeOrigin + performance.now();
