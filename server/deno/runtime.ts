import type { Context } from "hono";
import { utf8Length } from "../../src/text.js";
import type { RouteRuntime } from "../http/route-deps.js";
import { denoGlobal } from "./types.js";
import { DenoWsSocket } from "./ws-socket.js";

/** Seconds a WebSocket may go without a pong before Deno closes it (Deno pings meanwhile). */
const WS_IDLE_S = 120;

/** Whether a request came through `denoListen` (a request made otherwise, `app.request`, cannot be upgraded). */
function servedByDeno(c: Context): boolean {
  return (c.env as { deno?: boolean } | undefined)?.deno === true;
}

/**
 * The routes' runtime on `Deno.serve`: requests as web-standard ones (`base`, itself falling back
 * to them), WebSocket upgrades by `Deno.upgradeWebSocket`. A request that did not come through
 * `denoListen` is `base`'s to answer.
 */
export function denoRuntime(base: RouteRuntime, report: (e: unknown) => void): RouteRuntime {
  return {
    ...base,
    canUpgrade: (c) => servedByDeno(c) || base.canUpgrade(c),
    upgrade: (c, open) => {
      const deno = denoGlobal();
      if (!deno || !servedByDeno(c)) return base.upgrade(c, open);
      let upgraded: { socket: WebSocket; response: Response };
      try {
        upgraded = deno.upgradeWebSocket(c.req.raw, { idleTimeout: WS_IDLE_S });
      } catch (e) {
        return c.json({ error: `bad WebSocket handshake: ${e instanceof Error ? e.message : e}` }, 400);
      }
      const { socket: ws } = upgraded;
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        const socket = new DenoWsSocket(ws);
        let peer;
        try {
          peer = open(socket);
        } catch (e) {
          report(e);
          return socket.close(1011, "server error");
        }
        ws.onmessage = (e: MessageEvent) => {
          if (typeof e.data === "string") peer.receive(e.data, utf8Length(e.data));
          else peer.receive(null, (e.data as ArrayBuffer).byteLength);
        };
        ws.onclose = () => peer.gone();
        ws.onerror = () => peer.gone();
      };
      return upgraded.response;
    },
  };
}
