// Builds dist/: the TypeScript (server, client, protocol) with types, then the browser bundle.
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, chmodSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], { stdio: "inherit" });
chmodSync("dist/server/cli.js", 0o755);
if (existsSync("client/iife.ts")) {
  const { build } = await import("esbuild");
  await build({
    entryPoints: ["client/iife.ts"],
    bundle: true,
    minify: true,
    format: "iife",
    target: "es2019",
    outfile: "dist/client/cometbus.iife.js",
    legalComments: "none",
  });
}
