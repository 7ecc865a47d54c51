import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { parse, poll, wsUrl } from "./fixtures/clients.js";

const CLI = fileURLToPath(new URL("../dist/server/cli.js", import.meta.url));
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
});

function run(args: string[], env: Record<string, string> = {}): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  if (!existsSync(CLI)) throw new Error("dist/server/cli.js is missing: run npm run build (npm test does)");
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, PORT: "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, out: () => out, exited };
}

/** Starts `cometbus serve` and resolves with the URL it printed. */
async function serve(args: string[], env: Record<string, string> = {}) {
  const p = run(["serve", ...args], env);
  const url = await new Promise<string>((resolve, reject) => {
    const look = () => {
      const m = /listening on (http:\/\/\S+)\n/.exec(p.out());
      if (m) resolve(m[1]);
    };
    p.child.stdout!.on("data", look);
    p.exited.then((code) => reject(new Error(`cli exited (${code}) before listening: ${p.out()}`)));
  });
  return { ...p, url };
}

describe("cometbus serve", () => {
  it("--port 0 listens on a real port, prints it, publishes with the token, reports stats, stops on SIGTERM", async () => {
    const s = await serve(["--port", "0", "--publish-token", "T"]);
    const m = /^http:\/\/127\.0\.0\.1:(\d+)\/message-bus$/.exec(s.url);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);

    const stats0 = await (await fetch(`${s.url}/stats`)).json();
    expect(stats0).toEqual({
      backend: "memory",
      epoch: expect.stringMatching(/^\w+$/),
      channels: 0,
      subscribers: { poll: 0, "long-poll": 0, chunked: 0, sse: 0, websocket: 0, server: 0 },
      published: 0,
      delivered: 0,
      refused: 0,
      state: "serving",
    });

    const body = JSON.stringify({ channel: "/cli", data: { hello: "wörld 😀" } });
    const noToken = await fetch(`${s.url}/publish`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    expect(noToken.status).toBe(401);
    expect(await noToken.json()).toEqual({ error: "missing or wrong bearer token" });

    const ok = await fetch(`${s.url}/publish`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer T" },
      body,
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ global_id: 1, message_id: 1 });

    const a = await poll(s.url, "cli-client", { "/cli": 0 });
    expect(parse(a.text)).toEqual([{ global_id: 1, message_id: 1, channel: "/cli", data: { hello: "wörld 😀" } }]);

    const stats1 = await (await fetch(`${s.url}/stats`)).json();
    expect(stats1).toMatchObject({ backend: "memory", published: 1 });

    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
  });

  it("without a token publishing is disabled; the token may come from the environment", async () => {
    const off = await serve(["--port", "0"]);
    const res = await fetch(`${off.url}/publish`, { method: "POST", headers: { Authorization: "Bearer T" }, body: "{}" });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/disabled/) });
    off.child.kill("SIGTERM");
    expect(await off.exited).toBe(0);

    const env = await serve(["--port", "0", "--base", "/bus/"], { COMETBUS_PUBLISH_TOKEN: "E" });
    expect(env.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/bus$/);
    const pub = await fetch(`${env.url}/publish`, {
      method: "POST",
      headers: { Authorization: "Bearer E" },
      body: JSON.stringify({ channel: "/e", data: 1 }),
    });
    expect(await pub.json()).toEqual({ global_id: 1, message_id: 1 });
    env.child.kill("SIGTERM");
    expect(await env.exited).toBe(0);
  });

  it("--deflate negotiates permessage-deflate with a client that offers it; without it none is", async () => {
    for (const [args, extensions] of [[["--deflate", "--flush-delay", "0"], "permessage-deflate"], [[], ""]] as const) {
      const s = await serve(["--port", "0", ...args]);
      const ws = new WebSocket(wsUrl(s.url, "cli-deflate"), { perMessageDeflate: true });
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      expect(ws.extensions).toBe(extensions);
      ws.terminate();
      s.child.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }
  });

  it("usage and bad options exit non-zero with a message", async () => {
    const help = run(["--help"]);
    expect(await help.exited).toBe(0);
    expect(help.out()).toMatch(/^usage: cometbus serve/);
    const none = run([]);
    expect(await none.exited).toBe(2);
    const bad = run(["serve", "--port", "nope"]);
    expect(await bad.exited).toBe(1);
    expect(bad.out()).toMatch(/bad --port: nope/);
    const delay = run(["serve", "--port", "0", "--flush-delay=-5"]);
    expect(await delay.exited).toBe(1);
    expect(delay.out()).toMatch(/bad --flush-delay: -5/);
  });
});
