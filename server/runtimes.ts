import type { Hono } from "hono";
import { bunListen } from "./bun/listen.js";
import { bunRuntime } from "./bun/runtime.js";
import { bunGlobal } from "./bun/types.js";
import { denoListen } from "./deno/listen.js";
import { denoRuntime } from "./deno/runtime.js";
import { denoGlobal } from "./deno/types.js";
import type { RouteRuntime } from "./http/route-deps.js";
import type { NodeLink } from "./node/attach.js";
import { listen, type Listening } from "./node/listen.js";
import { nodeRuntime } from "./node/runtime.js";

export type ServerRuntime = Listening["runtime"];

/**
 * The runtime this process runs on. Bun and Deno also answer to Node's APIs (and Deno sets no
 * `process.versions.bun`), so their own globals decide; `COMETBUS_RUNTIME=node` keeps node:http
 * on either (their Node compatibility layers).
 */
export function serverRuntime(): ServerRuntime {
  const forced = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.COMETBUS_RUNTIME;
  if (forced === "node") return "node";
  if (bunGlobal()) return "bun";
  if (denoGlobal()) return "deno";
  return "node";
}

/** The routes' runtime: Node's with its fast paths, and on Bun or Deno their native upgrades on top. */
export function routeRuntime(base: RouteRuntime, report: (e: unknown) => void): RouteRuntime {
  const runtime = serverRuntime();
  return runtime === "bun" ? bunRuntime(base) : runtime === "deno" ? denoRuntime(base, report) : base;
}

export { nodeRuntime };

/**
 * `bus.listen`: node:http + `ws` on Node, `Bun.serve` on Bun, `Deno.serve` on Deno. `server` is
 * the runtime's own server (typed as Node's: on Bun and Deno it is theirs).
 */
export async function listenOnRuntime(link: NodeLink & { maxBufferedBytes: number }, port: number, hostname: string, app?: Hono): Promise<Listening> {
  const runtime = serverRuntime();
  if (runtime === "node") return listen(link, port, hostname, app);
  const served = runtime === "bun" ? await bunListen(link, port, hostname, app) : await denoListen(link, port, hostname, app);
  return served as Listening;
}
