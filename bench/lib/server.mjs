// Starts a server under test in its own process with a raised descriptor limit, and stops it.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { rmSync } from "node:fs";
import { nchanCommand } from "../servers/nchan.mjs";
import { tree } from "./proc.mjs";

// As high as we may: 65536, or the hard limit when we may not raise it (containers without CAP_SYS_RESOURCE).
const NOFILE = "65536 2>/dev/null || ulimit -n $(ulimit -Hn)";

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(port, path, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      if (r.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing answered on port ${port}`);
}

// The machine is shared: servers and generator run at a higher priority than the rest (root may
// lower niceness; elsewhere `nice` warns and runs at the default). BENCH_NICE=0 turns it off.
const NICE = process.env.BENCH_NICE ?? "-10";

/** Every process tree started here, killed if the runner is interrupted. */
export const running = new Set();

/** Spawns a command with the descriptor limit raised (a shell's `ulimit`, then `exec`). */
export function spawnRaised(cmd, args, stdio, env = {}) {
  const quoted = [cmd, ...args].map((a) => `'${a}'`).join(" ");
  const nice = NICE !== "0" ? `nice -n ${NICE} ` : "";
  const child = spawn("sh", ["-c", `{ ulimit -n ${NOFILE}; } && exec ${nice}${quoted}`], {
    stdio,
    env: { ...process.env, ...env },
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  return child;
}

/** Kills every process (and its children) still running. */
export function killAll() {
  for (const c of running) for (const p of tree(c.pid).reverse()) {
    try {
      process.kill(p, "SIGKILL");
    } catch {}
  }
}

/** Bun and Deno from their npm packages: the command that runs a bench server script on each. */
const RUNTIME_COMMANDS = {
  bun: (script) => [new URL("../../node_modules/.bin/bun", import.meta.url).pathname, [script]],
  deno: (script) => [new URL("../../node_modules/.bin/deno", import.meta.url).pathname, ["run", "-A", script]],
};

/**
 * `kind`: a file name in bench/servers or "nchan"; `runtime`: what runs it, node (default), bun or
 * deno. Resolves { port, pid, pids(), mem(), stop() }. On Bun and Deno there is no IPC channel to
 * ask for the heap: mem() is null and the memory figures are RSS from /proc.
 */
export async function startServer(kind, env = {}, runtime = "node") {
  let cmd, args, dir, port;
  if (kind === "nchan") {
    port = await freePort();
    ({ cmd, args, dir } = nchanCommand(port));
  } else if (runtime !== "node") {
    [cmd, args] = RUNTIME_COMMANDS[runtime](new URL(`../servers/${kind}.mjs`, import.meta.url).pathname);
  } else {
    cmd = process.execPath;
    // --profile: node --cpu-prof for the server under test; stop() then exits it cleanly to write it.
    const prof = process.env.BENCH_PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
    args = ["--expose-gc", ...prof, new URL(`../servers/${kind}.mjs`, import.meta.url).pathname];
  }
  const child = spawnRaised(cmd, args, ["ignore", "pipe", "inherit", ...(kind === "nchan" || runtime !== "node" ? [] : ["ipc"])], env);
  const exited = new Promise((resolve) => child.once("exit", resolve));
  if (kind === "nchan") {
    await waitHttp(port, "/hello", 10_000);
  } else {
    port = await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/READY (\d+)/);
        if (m) resolve(Number(m[1]));
      });
      child.once("exit", (code) => reject(new Error(`${kind} exited with ${code} before it was ready`)));
    });
  }
  let pids = tree(child.pid);
  return {
    port,
    pid: child.pid,
    pids: () => (kind === "nchan" ? (pids = tree(child.pid)) : pids),
    /** { rss, heapUsed } after a GC (heap only for Node servers). */
    mem() {
      if (!child.connected) return Promise.resolve(null);
      return new Promise((resolve) => {
        child.once("message", (m) => resolve(m.mem));
        child.send("mem");
      });
    },
    async stop() {
      if (process.env.BENCH_PROFILE_DIR && kind !== "nchan" && runtime === "node") {
        child.kill("SIGINT");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      }
      // nginx's worker outlives a killed master: kill the whole tree.
      for (const p of tree(child.pid).reverse()) {
        try {
          process.kill(p, "SIGKILL");
        } catch {}
      }
      await exited;
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
