import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";

export const NGINX = "/usr/sbin/nginx";

/** One config per hostile behaviour a proxy in front of the bus may have, plus the one the README recommends. */
export const NGINX_CONFIGS = ["no-upgrade", "buffering", "short-timeout", "http10", "all", "friendly"] as const;
export type NginxConfig = (typeof NGINX_CONFIGS)[number];

const FIXTURES = new URL("../fixtures/proxy-nginx/", import.meta.url);

export interface Nginx {
  config: NginxConfig;
  port: number;
  /** `http://127.0.0.1:port` */
  url: string;
  prefix: string;
  /** nginx's error log so far (for failure messages). */
  errorLog(): string;
  stop(): Promise<void>;
}

/** The whole nginx.conf for a config, a listening port and an upstream port. */
export function nginxConf(config: NginxConfig, port: number, upstreamPort: number, prefix: string): string {
  const proxy = readFileSync(new URL(`${config}.conf`, FIXTURES), "utf8")
    .split("\n")
    .map((l) => (l ? "            " + l : l))
    .join("\n");
  return readFileSync(new URL("base.conf", FIXTURES), "utf8")
    .replaceAll("{{PREFIX}}", prefix)
    .replaceAll("{{PORT}}", String(port))
    .replaceAll("{{UPSTREAM_PORT}}", String(upstreamPort))
    .replace("{{PROXY}}", proxy);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ port, host: "127.0.0.1" });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/** Every nginx still running, so a worker that dies without its afterAll does not leave them behind. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

function exited(p: ChildProcess): Promise<void> {
  return p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once("exit", () => r()));
}

async function launch(config: NginxConfig, upstreamPort: number): Promise<Nginx> {
  const prefix = mkdtempSync(join(tmpdir(), `cometbus-nginx-${config}-`));
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(prefix, d));
  const port = await freePort();
  const confPath = join(prefix, "nginx.conf");
  writeFileSync(confPath, nginxConf(config, port, upstreamPort, prefix));
  const errorLog = () => {
    try {
      return readFileSync(join(prefix, "error.log"), "utf8");
    } catch {
      return "";
    }
  };
  let stderr = "";
  const proc = spawn(NGINX, ["-p", prefix, "-c", confPath, "-e", join(prefix, "error.log")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  running.add(proc);
  proc.stderr!.on("data", (d) => (stderr += d));
  proc.once("exit", () => running.delete(proc));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 3000);
      await exited(proc);
      clearTimeout(killer);
    }
    rmSync(prefix, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) break;
    if (await accepts(port)) return { config, port, url: `http://127.0.0.1:${port}`, prefix, errorLog, stop };
    await new Promise((r) => setTimeout(r, 20));
  }
  const why = `nginx (${config}) did not start on port ${port}: ${stderr}${errorLog()}`;
  await stop();
  throw new Error(why);
}

/**
 * Debian's nginx in the foreground, in its own temp prefix, on a random loopback port, in front of
 * `upstreamPort`. Call `stop()` in afterAll/afterEach.
 */
export async function startNginx(config: NginxConfig, upstreamPort: number): Promise<Nginx> {
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await launch(config, upstreamPort);
    } catch (e) {
      last = e;
      // Only a port taken between freePort() and nginx's bind is worth another go.
      if (!String(e).includes("Address already in use")) throw e;
    }
  }
  throw last;
}
