// The subscriber side of the generator: worker processes, their progress, their CPU, their totals.
import { spawnRaised } from "./server.mjs";
import { cpuSeconds } from "./proc.mjs";

const WORKER = new URL("./worker.mjs", import.meta.url).pathname;

export class Generator {
  constructor(workers) {
    this.children = [];
    this.progress = [];
    for (let i = 0; i < workers; i++) {
      const child = spawnRaised(process.execPath, [WORKER], ["ignore", "inherit", "inherit", "ipc"]);
      const state = { delivered: 0, confirmed: 0, errors: 0, closed: 0, lastAt: 0 };
      child.on("message", (m) => {
        if (m.type === "progress") Object.assign(state, m);
        else if (m.type === "totals") child.emit("totals", m);
      });
      this.children.push(child);
      this.progress.push(state);
    }
  }

  /** Opens `count` subscribers of `client`, split between the workers. */
  open(client, port, count, pace) {
    const n = this.children.length;
    let from = 0;
    this.children.forEach((c, i) => {
      const share = Math.floor(count / n) + (i < count % n ? 1 : 0);
      c.send({ type: "open", client, port, from, count: share, ...pace });
      from += share;
    });
  }

  sum(key) {
    return this.progress.reduce((a, p) => a + p[key], 0);
  }

  get lastAt() {
    return Math.max(...this.progress.map((p) => p.lastAt));
  }

  /** CPU seconds of the worker processes (the runner adds its own). */
  cpu() {
    return cpuSeconds(this.children.map((c) => c.pid));
  }

  /** The measured part begins: each worker's event-loop utilisation counts from here. */
  mark() {
    for (const c of this.children) c.send({ type: "mark" });
  }

  finish() {
    return Promise.all(
      this.children.map(
        (c) =>
          new Promise((resolve) => {
            c.once("totals", resolve);
            c.send({ type: "finish" });
          }),
      ),
    );
  }

  async stop() {
    await Promise.all(
      this.children.map((c) => {
        if (c.exitCode !== null) return null;
        const gone = new Promise((r) => c.once("exit", r));
        c.send({ type: "stop" }, () => {});
        setTimeout(() => c.kill("SIGKILL"), 3000).unref();
        return gone;
      }),
    );
  }
}
