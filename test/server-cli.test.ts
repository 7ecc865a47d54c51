import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { NUMBER_FLAGS } from "../server/cli-flags.js";
import { longPoll, parse, poll, WsClient, wsUrl } from "./fixtures/clients.js";
import { parsePrometheusText } from "./helpers/prometheus-text.js";

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

  it("every standalone option has a flag that takes effect: origins, metrics, limits, backlog sizes, long-polling", async () => {
    const s = await serve([
      "--port", "0", "--publish-token", "T", "--metrics", "--metrics-token", "M",
      "--allowed-origins", "https://ok.example, https://also.example", "--max-channels", "2",
      "--max-backlog-size", "3", "--no-long-polling", "--max-body-bytes", "200",
    ]);
    const metrics = await fetch(`${s.url}/metrics`, { headers: { Authorization: "Bearer M" } });
    expect(metrics.status).toBe(200);
    const { types } = parsePrometheusText(await metrics.text());
    expect(types.get("cometbus_client_fallbacks_total")).toBe("counter");
    expect((await fetch(`${s.url}/metrics`)).status).toBe(401);

    const bad = new WsClient(wsUrl(s.url, "o1"), { origin: "https://bad.example" });
    await expect(bad.opened).rejects.toThrow(/HTTP 403/);
    const ok = new WsClient(wsUrl(s.url, "o2"), { origin: "https://also.example" });
    await ok.opened;
    ok.close();

    const three = await poll(s.url, "c1", { "/a": -1, "/b": -1, "/c": -1 });
    expect(three.status).toBe(400);
    expect(JSON.parse(three.text)).toEqual({ error: "too many channels: at most 2 in one subscription" });
    const big = await poll(s.url, "c1", { ["/" + "x".repeat(250)]: -1 });
    expect(big.status).toBe(413);

    for (let i = 1; i <= 5; i++) {
      const r = await fetch(`${s.url}/publish`, { method: "POST", headers: { Authorization: "Bearer T" }, body: JSON.stringify({ channel: "/b", data: i }) });
      expect(r.status).toBe(200);
    }
    // Not held (--no-long-polling): answered at once, with the 3 messages the backlog kept.
    const held = await longPoll(s.url, "c2", { "/b": 0 });
    expect(parse(held.text).filter((m) => m.channel === "/b").map((m) => m.data)).toEqual([3, 4, 5]);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
  });

  it("--help and the README list every flag; bad values exit 1 with the flag's name", async () => {
    const help = run(["--help"]);
    expect(await help.exited).toBe(0);
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const flags = ["port", "host", "base", "backend", "publish-token", "allowed-origins", "metrics", "metrics-token", "no-long-polling", "no-chunked", "demo", ...NUMBER_FLAGS.map((f) => f.flag)];
    for (const f of flags) {
      expect(help.out(), `--help lists --${f}`).toContain(`--${f} `);
      expect(readme, `README lists --${f}`).toContain(`--${f}`);
    }
    for (const [flag, value] of [["max-channels", "-1"], ["max-backlog-size", "0"], ["heartbeat", "soon"], ["allowed-origins", "ok.example"]]) {
      const p = run(["serve", "--port", "0", `--${flag}=${value}`]);
      expect(await p.exited, flag).toBe(1);
      expect(p.out()).toContain(`bad --${flag}: `);
    }
  });
});

