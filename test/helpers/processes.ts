/** `cometbus serve` as a child process, the way an operator runs it (the built CLI from dist/). */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { pause } from "./wait.js";

const CLI = fileURLToPath(new URL("../../dist/server/cli.js", import.meta.url));

/**
 * How long to wait for dist/ to come back: a build running next to the tests (rm -rf dist, then
 * tsc) makes it vanish for a few seconds, far less than this.
 */
const DIST_WAIT = { tries: 60, everyMs: 500 };

/** After SIGTERM, how long a process gets to close its connections before SIGKILL. */
const STOP_GRACE_MS = 3000;

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Still running (never crashed). */
  alive(): boolean;
  stop(): Promise<void>;
}

/** `runtime`: the command that runs a script (default this Node; `[bun]`, `[deno, "run", "-A"]`). */
export async function spawnServer(backend: string, token: string, extraArgs: string[] = [], runtime: string[] = [process.execPath]): Promise<ServerProcess> {
  for (let i = 0; i < DIST_WAIT.tries && !existsSync(CLI); i++) await pause(DIST_WAIT.everyMs);
  if (!existsSync(CLI)) throw new Error("dist/server/cli.js is missing: run npm run build (npm test does)");
  return spawnListening(runtime, [CLI, "serve", "--port", "0", "--backend", backend, "--publish-token", token, ...extraArgs]);
}

/** A script that prints "listening on URL" once it serves (the CLI, a test's own server), run by `runtime`. */
export async function spawnListening(runtime: string[], args: string[]): Promise<ServerProcess> {
  const child = spawn(runtime[0], [...runtime.slice(1), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PORT: "" },
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    const look = () => {
      const m = /listening on (http:\/\/\S+)\n/.exec(out);
      if (m) resolve(m[1]);
    };
    child.stdout!.on("data", look);
    void exited.then(() => reject(new Error(`cometbus serve exited before listening: ${out}`)));
  });
  return {
    url,
    child,
    output: () => out,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
