// scripts/check-layers.mjs: the repository keeps its layers, and each kind of breach is caught.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const script = path.join(repo, "scripts", "check-layers.mjs");

function check(root?: string): { code: number | null; output: string } {
  const args = root === undefined ? [script] : [script, "--root", root];
  const run = spawnSync(process.execPath, args, { cwd: repo, encoding: "utf8", timeout: 30_000 });
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fixture tree in a fresh temp dir: { "src/a.ts": "…" }. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), "cometbus-layers-"));
  tempDirs.push(root);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
  return root;
}

const CLEAN = /^layers: \d+ files, \d+ imports, no circles, no upward imports\n$/;

describe("check-layers", () => {
  it("finds no circle and no upward import in the repository", () => {
    const { code, output } = check();
    expect(output).toMatch(CLEAN);
    expect(code).toBe(0);
  });

  it("passes a tree that keeps every rule, type-only and dynamic imports included", () => {
    const root = tree({
      "src/wire.ts": `export const encode = (s: string): string => s;\n`,
      "src/index.ts": `export * from "./wire.js";\nexport type { Limits } from "./limits.js";\n`,
      "src/limits.ts": `export interface Limits { max: number }\n`,
      "server/core/backend.ts": `import type { Limits } from "../../src/limits.js";\nexport interface Backend { limits: Limits }\n`,
      "server/core/hub.ts": `import type { Backend } from "./backend.js";\nexport class Hub { constructor(readonly b: Backend) {} }\n`,
      "server/backends/memory.ts": `import type { Backend } from "../core/backend.js";\nexport const memory = {} as Backend;\n`,
      "server/transports/sse.ts": `import { Hub } from "../core/hub.js";\nimport { encode } from "../../src/wire.js";\nexport const sse = (h: Hub) => encode(String(h));\n`,
      "server/http/routes.ts": `import type { Hono } from "hono";\nimport { sse } from "../transports/sse.js";\nexport const routes = (app: Hono) => [app, sse];\n`,
      "server/node/listen.ts": `import { createServer } from "node:http";\nimport { routes } from "../http/routes.js";\nexport const listen = () => [createServer, routes];\n`,
      "server/bus.ts": `import { listen } from "./node/listen.js";\nexport const bus = async () => [listen, await import("./backends/memory.js" as string)];\n`,
      "client/bus.ts": `import { encode } from "../src/wire.js";\nimport type { Message } from "./types.js";\nexport const send = (m: Message) => encode(m.data);\n`,
      "client/types.ts": `export interface Message { data: string }\n`,
    });
    const { code, output } = check(root);
    expect(output).toBe("layers: 12 files, 15 imports, no circles, no upward imports\n");
    expect(code).toBe(0);
  });

  const failing: { name: string; files: Record<string, string>; expected: string[] }[] = [
    {
      name: "a two-file circle",
      files: {
        "src/a.ts": `import { b } from "./b.js";\nexport const a = () => b;\n`,
        "src/b.ts": `import { a } from "./a.js";\nexport const b = () => a;\n`,
      },
      expected: ["Import circles:", "src/a.ts → src/b.ts → src/a.ts"],
    },
    {
      name: "a type-only circle",
      files: {
        "server/core/hub.ts": `import type { Subscriber } from "./subscriber.js";\nexport interface Hub { subscribers: Subscriber[] }\n`,
        "server/core/subscriber.ts": `export type { Hub } from "./hub.js";\nexport interface Subscriber { hub: import("./hub.js").Hub }\n`,
      },
      expected: ["Import circles:", "server/core/hub.ts → server/core/subscriber.ts → server/core/hub.ts (type-only)"],
    },
    {
      name: "a three-file circle through a dynamic import",
      files: {
        "client/a.ts": `import { b } from "./b.js";\nexport const a = () => b;\n`,
        "client/b.ts": `import { c } from "./c.js";\nexport const b = () => c;\n`,
        "client/c.ts": `export const c = () => import("./a.js");\n`,
      },
      expected: ["client/a.ts → client/b.ts → client/c.ts → client/a.ts"],
    },
    {
      name: "a core file importing node:http",
      files: { "server/core/hub.ts": `import { createServer } from "node:http";\nexport const hub = createServer;\n` },
      expected: ["Layer violations:", "server/core/hub.ts:1: imports node:http: server/core/** may not import node:*"],
    },
    {
      name: "a core file knowing hono only by type",
      files: { "server/core/hub.ts": `import type { Context } from "hono";\nexport type HubContext = Context;\n` },
      expected: ["server/core/hub.ts:1: imports hono (type-only): server/core/** may not import"],
    },
    {
      name: "a transport importing a file in server/http",
      files: {
        "server/http/routes.ts": `export const routes = [];\n`,
        "server/transports/sse.ts": `import { routes } from "../http/routes.js";\nexport const sse = routes;\n`,
      },
      expected: [
        "server/transports/sse.ts:1: imports ../http/routes.js (server/http/routes.ts): server/transports/** may import only src/**, server/core/**, server/transports/**",
      ],
    },
    {
      name: "a backend importing server/core/hub.ts",
      files: {
        "server/core/backend.ts": `export interface Backend { kind: string }\n`,
        "server/core/hub.ts": `export class Hub {}\n`,
        "server/backends/memory.ts": `import type { Backend } from "../core/backend.js";\nimport { Hub } from "../core/hub.js";\nexport const memory = (h: Hub): Backend => ({ kind: String(h) });\n`,
      },
      expected: [
        "server/backends/memory.ts:2: imports ../core/hub.js (server/core/hub.ts): server/backends/** may import only server/core/backend.ts, server/backends/**",
      ],
    },
    {
      name: "a Bun adapter importing node:http and ws",
      files: { "server/bun/listen.ts": `import { createServer } from "node:http";\nimport WebSocket from "ws";\nexport const x = [createServer, WebSocket];\n` },
      expected: ["server/bun/listen.ts:1: imports node:http: server/bun/** may not import node:*", "server/bun/listen.ts:2: imports ws: server/bun/** may not import"],
    },
    {
      name: "a Deno adapter importing the Node adapter, and the Bun one",
      files: {
        "server/node/sink.ts": `export const sink = 1;\n`,
        "server/bun/types.ts": `export const bun = 1;\n`,
        "server/deno/listen.ts": `import { sink } from "../node/sink.js";\nimport { bun } from "../bun/types.js";\nexport const x = [sink, bun];\n`,
      },
      expected: [
        "server/deno/listen.ts:1: imports ../node/sink.js (server/node/sink.ts): server/deno/** may import only src/**, server/core/**, server/transports/**, server/http/**, server/deno/**",
        "server/deno/listen.ts:2: imports ../bun/types.js (server/bun/types.ts): server/deno/** may import only",
      ],
    },
    {
      name: "the Node adapter importing the Bun one",
      files: {
        "server/bun/runtime.ts": `export const bunRuntime = 1;\n`,
        "server/node/listen.ts": `import { bunRuntime } from "../bun/runtime.js";\nexport const x = bunRuntime;\n`,
      },
      expected: ["server/node/listen.ts:1: imports ../bun/runtime.js (server/bun/runtime.ts): server/node/** may import only"],
    },
    {
      name: "a protocol file importing a package",
      files: { "src/wire.ts": `export { parse } from "eventsource-parser";\n` },
      expected: ["src/wire.ts:1: imports eventsource-parser: src/** may not import any package"],
    },
    {
      name: "a client file importing a server package and a Node built-in without its prefix",
      files: { "client/bus.ts": `import WebSocket from "ws";\nimport { readFileSync } from "fs";\nexport const x = [WebSocket, readFileSync];\n` },
      expected: ["client/bus.ts:1: imports ws: client/** may not import", "client/bus.ts:2: imports fs: client/** may not import"],
    },
    {
      name: "a file no layer covers, and an import of a missing file",
      files: { "server/extra/thing.ts": `import { gone } from "../../src/gone.js";\nexport const thing = gone;\n` },
      expected: ["server/extra/thing.ts: no layer rule covers this file", "server/extra/thing.ts:1: imports ../../src/gone.js, which resolves to no file"],
    },
  ];

  for (const { name, files, expected } of failing)
    it(`fails on ${name}`, () => {
      const { code, output } = check(tree(files));
      for (const problem of expected) expect(output).toContain(problem);
      expect(code).toBe(1);
    });

  it("refuses a root with no sources rather than passing it", () => {
    const { code, output } = check(tree({ "lib/a.ts": `export const a = 1;\n` }));
    expect(output).toContain("no TypeScript file under src/, server/, client/");
    expect(code).toBe(2);
  });

  it("does not mistake imports in comments and strings for imports", () => {
    const root = tree({
      "src/wire.ts": `// import { x } from "hono";\n/* import("node:http") */\nexport const doc = 'import "ws"' + \`from "pg"\`;\n`,
    });
    expect(check(root)).toEqual({ code: 0, output: "layers: 1 files, 0 imports, no circles, no upward imports\n" });
  });
});
