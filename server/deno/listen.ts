import type { Hono } from "hono";
import { type RuntimeLink, type Served, servedBy, serverUrl } from "../http/listening.js";
import { denoGlobal } from "./types.js";

/** Serves `app` (default: the bus's routes at its base) on `Deno.serve`, WebSockets by `Deno.upgradeWebSocket`. */
export async function denoListen(link: RuntimeLink, port: number, hostname: string, app?: Hono): Promise<Served> {
  const deno = denoGlobal();
  if (!deno) throw new Error("cometbus: denoListen runs on Deno only");
  const root = app ?? link.mounted();
  const abort = new AbortController();
  let listening!: (port: number) => void;
  const bound = new Promise<number>((r) => (listening = r));
  const server = deno.serve(
    {
      port,
      hostname,
      signal: abort.signal,
      // Deno prints "Listening on …" unless told otherwise; the CLI says it its own way.
      onListen: (addr) => listening(addr.port),
      onError: (e) => {
        link.report(e);
        return Response.json({ error: "internal error" }, { status: 500, headers: { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" } });
      },
    },
    (req) => root.fetch(req, { deno: true }),
  );
  const actual = await bound;
  return servedBy("deno", link, actual, serverUrl(hostname, actual), server, {
    // A graceful shutdown waits for every request under way; close() cuts it short after its grace.
    stopAccepting: () => server.shutdown(),
    closeAll: () => abort.abort(),
  });
}
