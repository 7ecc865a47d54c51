/**
 * Code cites the wire by its section in docs/protocol.md (`docs/protocol.md#64-server-sent-events`):
 * every such citation names a heading that exists, with GitHub's anchor rule, so a renumbered or
 * renamed section cannot leave the code pointing nowhere.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) return [];
    return statSync(path).isDirectory() ? files(path) : /\.(ts|mjs|md)$/.test(name) ? [path] : [];
  });
}

describe("docs/protocol.md citations", () => {
  it("every anchor cited in src/, server/, client/, test/, bench/ and the README exists", () => {
    const doc = readFileSync(join(ROOT, "docs/protocol.md"), "utf8");
    const anchors = new Set([...doc.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1])));
    const cited: string[] = [];
    for (const f of [...["src", "server", "client", "test", "bench"].flatMap((d) => files(join(ROOT, d))), join(ROOT, "README.md")]) {
      for (const m of readFileSync(f, "utf8").matchAll(/protocol\.md#([\w-]+)/g)) cited.push(`${f.slice(ROOT.length + 1)} → #${m[1]}`);
    }
    expect(cited.length).toBeGreaterThan(10);
    expect(cited.filter((c) => !anchors.has(c.split("#").pop()!))).toEqual([]);
  });
});
