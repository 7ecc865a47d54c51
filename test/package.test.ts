// The package as npm ships it: what `npm pack` puts in, that a fresh install without the optional
// drivers (ioredis, pg) and without prom-client still imports and serves, that the browser bundle
// resolves through `exports` and the CDN fields, and that publint and arethetypeswrong find nothing.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = (name: string) => join(ROOT, "node_modules", ".bin", name);

/** Every file the package may ship; anything else in the tarball fails the test. */
const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^dist\/(server|client|src)\/(.+\/)?[\w-]+\.(js|d\.ts)$/,
  /^dist\/client\/cometbus\.iife\.js$/,
  /^demos\/[\w-]+\.(html|css)$/,
  /^demos\/js\/[\w-]+\.(js|d\.ts)$/,
];
/** And what it must ship. */
const REQUIRED = [
  "package.json",
  "README.md",
  "dist/server/index.js",
  "dist/server/index.d.ts",
  "dist/server/redis.js",
  "dist/server/postgres.js",
  "dist/server/cli.js",
  "dist/client/index.js",
  "dist/client/cometbus.iife.js",
  "dist/src/index.js",
  "demos/index.html",
];

let dir = "";
let tarball = "";

beforeAll(async () => {
  if (!existsSync(join(ROOT, "dist/client/cometbus.iife.js"))) throw new Error("dist/ is missing: run npm run build (npm test does)");
  dir = mkdtempSync(join(tmpdir(), "cometbus-pack-"));
  // --ignore-scripts: dist/ is already built (pretest); `prepare` would rebuild it under the other suites.
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], { cwd: ROOT });
  tarball = join(dir, JSON.parse(stdout)[0].filename);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The packed file list, from the tarball itself. */
async function packedFiles(): Promise<string[]> {
  const { stdout } = await run("tar", ["-tzf", tarball]);
  return stdout.split("\n").filter((l) => l && !l.endsWith("/")).map((l) => l.replace(/^package\//, ""));
}

/**
 * An empty project with the tarball installed and, beside it, the package's dependencies as npm would
 * install them (linked from this checkout), minus `without`. Node resolves nothing else.
 */
async function install(name: string, without: string[]): Promise<string> {
  const app = join(dir, name);
  const modules = join(app, "node_modules");
  const unpacked = join(app, "unpacked");
  mkdirSync(modules, { recursive: true });
  mkdirSync(unpacked);
  await run("tar", ["-xzf", tarball, "-C", unpacked]);
  renameSync(join(unpacked, "package"), join(modules, "cometbus"));
  const manifest = JSON.parse(readFileSync(join(modules, "cometbus/package.json"), "utf8"));
  const todo = Object.keys(manifest.dependencies ?? {});
  const linked = new Set<string>();
  while (todo.length) {
    const dep = todo.pop()!;
    if (linked.has(dep) || without.includes(dep)) continue;
    linked.add(dep);
    const from = join(ROOT, "node_modules", dep);
    mkdirSync(join(modules, dep, ".."), { recursive: true });
    symlinkSync(from, join(modules, dep), "dir");
    const own = JSON.parse(readFileSync(join(from, "package.json"), "utf8"));
    todo.push(...Object.keys(own.dependencies ?? {}));
  }
  return app;
}

/** Runs an ES module in `app` and returns what it printed as JSON. */
async function inProject(app: string, code: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", code], { cwd: app, env: { ...process.env, NODE_PATH: "" } });
  return JSON.parse(stdout.trim().split("\n").pop()!);
}

describe("npm pack", () => {
  it("ships exactly the allowed files, and every one it needs", async () => {
    const files = await packedFiles();
    expect(files.filter((f) => !ALLOWED.some((re) => re.test(f)))).toEqual([]);
    expect(REQUIRED.filter((f) => !files.includes(f))).toEqual([]);
  });

  it("installed without ioredis, pg and prom-client: `import \"cometbus\"` serves; the drivers are asked for by name; the bundle resolves", async () => {
    const app = await install("lean", ["ioredis", "pg", "prom-client"]);
    expect(existsSync(join(app, "node_modules/hono"))).toBe(true);
    expect(existsSync(join(app, "node_modules/ioredis"))).toBe(false);
    const out = await inProject(
      app,
      `
      import { MessageBus } from "cometbus";
      import { readFileSync } from "node:fs";
      import { fileURLToPath } from "node:url";
      const bus = new MessageBus();
      const l = await bus.listen(0);
      await bus.publish("/p", 1);
      const polled = await (await fetch(l.url + "/message-bus/c1/poll?dlp=t", { method: "POST", body: "/p=0" })).json();
      await l.close();
      const redis = await import("cometbus/redis").then(() => "loaded", (e) => e.code);
      const redisBus = new MessageBus({ backend: "redis://127.0.0.1:1", onError: () => {} });
      const why = await redisBus.ready().then(() => "ready", (e) => e.message);
      const bundle = fileURLToPath(import.meta.resolve("cometbus/client.iife.js"));
      const manifest = JSON.parse(readFileSync(fileURLToPath(import.meta.resolve("cometbus/package.json")), "utf8"));
      console.log(JSON.stringify({ polled, redis, why, bundle: readFileSync(bundle, "utf8").slice(0, 40), cdn: [manifest.unpkg, manifest.jsdelivr] }));
      `,
    );
    expect(out).toMatchObject({
      polled: [{ global_id: 1, message_id: 1, channel: "/p", data: 1 }],
      redis: "ERR_MODULE_NOT_FOUND",
      why: "cometbus: this backend needs the ioredis package: npm install ioredis",
      cdn: ["./dist/client/cometbus.iife.js", "./dist/client/cometbus.iife.js"],
    });
    expect((out as { bundle: string }).bundle).toMatch(/^(\(\(\)=>|"use strict";|var |!function)/);
    expect(existsSync(join(app, "node_modules/cometbus/dist/client/cometbus.iife.js"))).toBe(true);
  });

  it("publint and arethetypeswrong find nothing", async () => {
    const publint = await run(BIN("publint"), ["run", tarball, "--strict"], { cwd: ROOT });
    expect(publint.stdout).toMatch(/All good/);
    // The IIFE bundle is a classic script for a <script> tag, not a module: it has no types to check.
    // esm-only: the package is ESM (Node 20+); CommonJS and node10 resolution are out of scope. attw exits
    // non-zero on any problem that counts under that profile, and prints its table.
    const attw = await run(BIN("attw"), [tarball, "--profile", "esm-only", "--exclude-entrypoints", "client.iife.js", "--format", "table-flipped"], { cwd: ROOT }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    expect(attw, attw.out).toMatchObject({ code: 0 });
    for (const entry of ["cometbus", "cometbus/redis", "cometbus/postgres", "cometbus/client", "cometbus/protocol"]) expect(attw.out).toContain(`"${entry}"`);
  });
});
