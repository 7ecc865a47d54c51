// Opens S subscribers on a started server and waits until every one is confirmed: by the client
// itself where the protocol answers a subscribe, else by the server's own count.
import { until } from "./wait.mjs";

/** Clients that cannot see their subscription take effect; the server's count decides for them. */
const SERVER_CONFIRMS = new Set(["nchanWs", "nchanSse", "nchanLongPoll", "cometbusLongPoll", "bareLongPoll"]);

export async function subscribeAll(gen, target, port, subs, timeoutMs) {
  const started = performance.now();
  gen.open(target.client, port, subs);
  const serverSide = SERVER_CONFIRMS.has(target.client);
  let serverCount = 0;
  const ok = await until(async () => {
    if (!serverSide) return gen.sum("confirmed") >= subs;
    serverCount = (await target.count(port).catch(() => 0)) ?? 0;
    return serverCount >= subs;
  }, timeoutMs);
  return {
    ok,
    connectMs: performance.now() - started,
    confirmed: serverSide ? serverCount : gen.sum("confirmed"),
    errors: gen.sum("errors"),
  };
}
