/**
 * A real Redis Cluster for one test file: 3 masters and 3 replicas on free loopback ports, in a
 * temporary directory, without persistence. One per file (startup takes a few seconds); `stop()`
 * kills all six processes and removes the directory.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { listening } from "./backends.js";
import { freePort } from "./ports.js";
import { requireService } from "./services.js";
import { waitFor } from "./wait.js";

const run = promisify(execFile);

export const hasRedisCluster = () =>
  requireService(
    "redis-server and redis-cli",
    spawnSync("redis-server", ["--version"]).status === 0 && spawnSync("redis-cli", ["--version"]).status === 0,
    "apt-get install redis-server (redis-cli comes with it, in redis-tools)",
  );

export interface RedisClusterNode {
  port: number;
  /** Its cluster bus port. */
  bus: number;
  child: ChildProcess;
}

export class RedisCluster {
  readonly nodes: RedisClusterNode[] = [];
  /** Ports killed: their process may not have reported its exit yet. */
  private readonly killed = new Set<number>();
  private constructor(private readonly dir: string) {}

  /** `redis+cluster://…` naming every node (a client needs one that answers). */
  url(query = ""): string {
    return `redis+cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}${query ? `/?${query}` : ""}`;
  }

  static async start(masters = 3): Promise<RedisCluster> {
    const c = new RedisCluster(mkdtempSync(join(tmpdir(), "cometbus-cluster-")));
    try {
      for (let i = 0; i < masters * 2; i++) c.nodes.push(await c.startNode());
      await run("redis-cli", ["--cluster", "create", ...c.nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "1", "--cluster-yes"]);
      await c.untilHealthy();
      return c;
    } catch (e) {
      await c.stop();
      throw e;
    }
  }

  /**
   * One node on ports free a moment ago. Another suite may take such a port before redis-server
   * binds it (several suites start clusters at once): then the node exits and is started again on others.
   */
  private async startNode(): Promise<RedisClusterNode> {
    const taken = new Set(this.nodes.flatMap((n) => [n.port, n.bus]));
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const bus = await freePort();
      if (port === bus || taken.has(port) || taken.has(bus)) continue;
      const child = spawn(
        "redis-server",
        [
          "--port", String(port), "--cluster-port", String(bus), "--bind", "127.0.0.1",
          "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`,
          // A dead master is replaced after a second, not the default fifteen.
          "--cluster-node-timeout", "1000",
          "--dir", this.dir, "--save", "", "--appendonly", "no",
        ],
        { stdio: "ignore" },
      );
      await waitFor(async () => child.exitCode !== null || (await listening(port)), `redis-server on ${port}`, 20_000);
      if (child.exitCode === null) return { port, bus, child };
      if (attempt === 5) throw new Error(`redis-server would not start on ${port} / ${bus} (exit ${child.exitCode}), five times`);
    }
  }

  private async cli(port: number, ...args: string[]): Promise<string> {
    return (await run("redis-cli", ["-p", String(port), ...args])).stdout;
  }

  /** Every live node says cluster_state:ok and every slot has a live master. */
  async untilHealthy(ms = 30_000): Promise<void> {
    await waitFor(
      async () => {
        for (const n of this.nodes) {
          if (this.killed.has(n.port)) continue;
          const info = await this.cli(n.port, "cluster", "info").catch(() => "");
          if (!info.includes("cluster_state:ok")) return false;
        }
        return true;
      },
      "cluster_state:ok on every node",
      ms,
      100,
    );
  }

  /** The live masters as the first live node sees them: port and slot ranges. */
  async masters(): Promise<{ port: number; slots: [number, number][] }[]> {
    const live = this.nodes.find((n) => !this.killed.has(n.port))!;
    const text = await this.cli(live.port, "cluster", "nodes");
    return text
      .trim()
      .split("\n")
      .map((l) => l.split(" "))
      .filter((f) => f[2].split(",").includes("master") && !/fail/.test(f[2]))
      .map((f) => ({
        port: Number(/:(\d+)@/.exec(f[1])![1]),
        slots: f.slice(8).filter((r) => /^\d/.test(r)).map((r) => r.split("-").map(Number) as [number, number]).map(([lo, hi]) => [lo, hi ?? lo] as [number, number]),
      }));
  }

  /** The port of a live replica of the master on `port`, if it has one. */
  async replicaOf(port: number): Promise<number> {
    const live = this.nodes.find((n) => !this.killed.has(n.port))!;
    const text = await this.cli(live.port, "cluster", "nodes");
    const lines = text.trim().split("\n").map((l) => l.split(" "));
    const master = lines.find((f) => f[1].startsWith(`127.0.0.1:${port}@`));
    const replica = lines.find((f) => master && f[3] === master[0] && !/fail/.test(f[2]));
    if (!replica) throw new Error(`no live replica of ${port} in\n${text}`);
    return Number(/:(\d+)@/.exec(replica[1])![1]);
  }

  /** SIGSTOP / SIGCONT: a node that stops reading (its replication stream piles up at its master). */
  pause(port: number, paused: boolean): void {
    this.nodes.find((n) => n.port === port)!.child.kill(paused ? "SIGSTOP" : "SIGCONT");
  }

  /**
   * The master on `port` closes its replicas' links: what it writes from then on reaches no replica
   * (a paused replica cannot reconnect and catch up).
   */
  async cutReplicas(port: number): Promise<void> {
    await this.cli(port, "client", "kill", "type", "replica");
  }

  /** The port of the master serving `slot`. */
  async ownerOf(slot: number): Promise<number> {
    const m = (await this.masters()).find((x) => x.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
    if (!m) throw new Error(`no master serves slot ${slot}`);
    return m.port;
  }

  /** SIGKILLs the node on `port` (a master dies; its replica is promoted within the node timeout). */
  kill(port: number): void {
    this.killed.add(port);
    this.nodes.find((n) => n.port === port)!.child.kill("SIGKILL");
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) n.child.kill("SIGKILL");
    await Promise.all(
      this.nodes.map((n) => (n.child.exitCode !== null || n.child.signalCode !== null ? null : new Promise((r) => n.child.once("exit", r)))),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}
