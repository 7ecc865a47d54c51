/** Bun and Deno, from their npm packages (node_modules/.bin), as commands that run a script. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { requireService } from "./services.js";

export const RUNTIMES = ["bun", "deno"] as const;
export type Runtime = (typeof RUNTIMES)[number];

/**
 * The runtime's binary: where npm links it, or (when the package's install script did not run) in
 * the platform package that ships it.
 */
function bin(name: Runtime): string {
  const inModules = (path: string) => fileURLToPath(new URL(`../../node_modules/${path}`, import.meta.url));
  const candidates = name === "bun" ? [".bin/bun", "@oven/bun-linux-x64/bin/bun"] : [".bin/deno", "@deno/linux-x64-glibc/deno"];
  return candidates.map(inModules).find((p) => existsSync(p)) ?? inModules(candidates[0]);
}

/** The command that runs a JavaScript file on `runtime` (Deno: every permission, as `deno run -A`). */
export function runtimeCommand(runtime: Runtime): string[] {
  return runtime === "bun" ? [bin("bun")] : [bin("deno"), "run", "-A"];
}

/** The runtime's version, or null when its binary is missing or does not run. */
export function runtimeVersion(runtime: Runtime): string | null {
  const run = spawnSync(bin(runtime), ["--version"], { encoding: "utf8", timeout: 20_000 });
  return run.status === 0 ? run.stdout.trim().split("\n")[0] : null;
}

/** Whether each runtime can run here: required in CI, a one-line skip elsewhere. */
export function requireRuntime(runtime: Runtime): boolean {
  return requireService(runtime, runtimeVersion(runtime) !== null, "npm ci installs it from the npm package (devDependency)");
}
