// Keeps the layering honest: imports point only down, and no import circle exists.
//
//   node scripts/check-layers.mjs [--root DIR]
//
// Reads every TypeScript file under src/, server/ and client/ with the TypeScript parser, collects
// what each one imports (static, `import type`, `export … from`, `import x = require(…)`,
// `import("…")` calls and `import("…")` types, module augmentations), then reports
//   - every import circle (type-only and dynamic imports included: a circle for the reader is a
//     circle), as the cycle path `a.ts → b.ts → a.ts`;
//   - every import a file's layer does not allow, by the tables below.
// Exit 0 with one line when clean; 1 with every problem listed; 2 if the check itself cannot run.

import { existsSync, readdirSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// ── The rules ───────────────────────────────────────────────────────────────────────────────
// A file belongs to the first layer whose `files` matches it (paths from the root, `**` any depth,
// `*` within one folder). It may import only files matching one of `may`, and no package matching
// one of `mayNot` (`*` every package, `node:*` Node's built-ins with or without the prefix,
// `@scope/*` a scope). Type-only imports count: a layer must not even know what it may not import.

const SERVER_PACKAGES = ["hono", "@hono/*", "ws", "ioredis", "pg"];

const LAYERS = [
  { files: "src/**",               may: ["src/**"],                                                                      mayNot: ["*"] },
  { files: "server/core/**",       may: ["src/**", "server/core/**"],                                                    mayNot: ["node:*", "hono", "@hono/*", "ws"] },
  { files: "server/backends/**",   may: ["server/core/backend.ts", "server/backends/**"],                                mayNot: [] },
  { files: "server/transports/**", may: ["src/**", "server/core/**", "server/transports/**"],                            mayNot: ["node:*", "hono", "@hono/*", "ws"] },
  { files: "server/http/**",       may: ["src/**", "server/core/**", "server/transports/**", "server/http/**"],          mayNot: [] },
  { files: "server/node/**",       may: ["src/**", "server/core/**", "server/transports/**", "server/http/**", "server/node/**"], mayNot: [] },
  // Bun's and Deno's adapters speak to their runtime's own server: nothing of Node, nor of each other.
  { files: "server/bun/**",        may: ["src/**", "server/core/**", "server/transports/**", "server/http/**", "server/bun/**"],  mayNot: ["node:*", "ws", "@hono/node-server"] },
  { files: "server/deno/**",       may: ["src/**", "server/core/**", "server/transports/**", "server/http/**", "server/deno/**"], mayNot: ["node:*", "ws", "@hono/node-server"] },
  { files: "server/*.ts",          may: ["src/**", "server/**"],                                                         mayNot: [] },
  { files: "client/**",            may: ["src/**", "client/**"],                                                         mayNot: ["node:*", ...SERVER_PACKAGES] },
];

const ROOTS = ["src", "server", "client"];
const EXTENSIONS = [".ts", ".mts", ".cts", ".tsx"];

// ── Arguments ───────────────────────────────────────────────────────────────────────────────

const here = path.dirname(fileURLToPath(import.meta.url));
let root = path.resolve(here, "..");
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--root" && argv[i + 1] !== undefined) root = path.resolve(argv[++i]);
  else if (argv[i].startsWith("--root=")) root = path.resolve(argv[i].slice("--root=".length));
  else fail(`unknown argument ${argv[i]} (usage: node scripts/check-layers.mjs [--root DIR])`);
}
if (!existsSync(root) || !statSync(root).isDirectory()) fail(`--root ${root} is not a directory`);

function fail(message) {
  console.error(`check-layers: ${message}`);
  process.exit(2);
}

// ── Patterns ────────────────────────────────────────────────────────────────────────────────

const globCache = new Map();
function matches(glob, file) {
  let re = globCache.get(glob);
  if (!re) {
    const body = glob
      .split(/(\*\*\/?|\*)/)
      .map((part) => (part === "**/" ? "(?:.*/)?" : part === "**" ? ".*" : part === "*" ? "[^/]*" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")))
      .join("");
    re = new RegExp(`^${body}$`);
    globCache.set(glob, re);
  }
  return re.test(file);
}

const builtins = new Set(builtinModules);
/** `node:fs/promises` and `fs/promises` → `node:fs`; `@hono/node-server/utils` → `@hono/node-server`. */
function packageOf(specifier) {
  if (specifier.startsWith("node:")) return `node:${specifier.slice(5).split("/")[0]}`;
  const parts = specifier.split("/");
  const name = specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
  return builtins.has(name) || builtins.has(specifier) ? `node:${parts[0]}` : name;
}

function packageMatches(pattern, pkg) {
  if (pattern === "*") return true;
  if (pattern === "node:*") return pkg.startsWith("node:");
  if (pattern.endsWith("/*")) return pkg.startsWith(pattern.slice(0, -1));
  return pkg === pattern;
}

const layerOf = (file) => LAYERS.find((layer) => matches(layer.files, file));

// ── Files ───────────────────────────────────────────────────────────────────────────────────

const toPosix = (p) => p.split(path.sep).join("/");
const isSource = (name) => EXTENSIONS.some((ext) => name.endsWith(ext));

function listFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full));
    else if (entry.isFile() && isSource(entry.name)) out.push(full);
  }
  return out;
}

const files = ROOTS.filter((r) => existsSync(path.join(root, r)))
  .flatMap((r) => listFiles(path.join(root, r)))
  .map((f) => toPosix(path.relative(root, f)))
  .sort();
const fileSet = new Set(files);
if (files.length === 0) fail(`no TypeScript file under ${ROOTS.map((r) => `${r}/`).join(", ")} of ${root}`);

/** `./x.js` → `./x.ts` (as NodeNext does), from a root-relative file; null if nothing is there. */
function resolveRelative(from, specifier) {
  const base = path.posix.normalize(
    specifier.startsWith("/") ? toPosix(path.relative(root, specifier)) : path.posix.join(path.posix.dirname(from), specifier),
  );
  const stem = (ext) => base.slice(0, -ext.length);
  const candidates = [];
  if (/\.(js|jsx)$/.test(base)) candidates.push(`${stem(".js")}.ts`, `${stem(".js")}.tsx`, `${stem(".js")}.d.ts`);
  if (base.endsWith(".mjs")) candidates.push(`${stem(".mjs")}.mts`, `${stem(".mjs")}.d.mts`);
  if (base.endsWith(".cjs")) candidates.push(`${stem(".cjs")}.cts`, `${stem(".cjs")}.d.cts`);
  candidates.push(base, `${base}.ts`, `${base}.tsx`, `${base}.d.ts`, `${base}/index.ts`, `${base}/index.tsx`);
  return (
    candidates.find((c) => fileSet.has(c)) ??
    candidates.find((c) => existsSync(path.join(root, c)) && statSync(path.join(root, c)).isFile()) ??
    null
  );
}

// ── Parsing ─────────────────────────────────────────────────────────────────────────────────
// TypeScript 7's parser runs in the tsgo binary; its JS API ("unstable/sync") hands back the AST.
// A virtual tsconfig lists exactly our files, resolving nothing and loading no lib: parse only.

let API, SyntaxKind;
try {
  ({ API } = await import("typescript/unstable/sync"));
  ({ SyntaxKind } = await import("typescript/unstable/ast"));
} catch (error) {
  fail(`cannot load the TypeScript parser (typescript/unstable/sync): ${error.message}`);
}

/** The string literal under `("x" as string)`, `<string>"x"`, `"x"!` and the like, if any. */
function literalIn(node) {
  while (node) {
    switch (node.kind) {
      case SyntaxKind.StringLiteral:
      case SyntaxKind.NoSubstitutionTemplateLiteral:
        return node;
      case SyntaxKind.ParenthesizedExpression:
      case SyntaxKind.AsExpression:
      case SyntaxKind.SatisfiesExpression:
      case SyntaxKind.TypeAssertionExpression:
      case SyntaxKind.NonNullExpression:
        node = node.expression;
        break;
      default:
        return undefined;
    }
  }
  return undefined;
}

const allTypeOnly = (elements) => elements.length > 0 && elements.every((e) => e.isTypeOnly);

/** Every module a file names: { specifier, line, kind: "import" | "type" | "dynamic" }. */
function importsOf(sourceFile) {
  const found = [];
  const add = (literal, kind) =>
    found.push({ specifier: literal.text, kind, line: sourceFile.getLineAndCharacterOfPosition(literal.getStart(sourceFile)).line + 1 });
  const visit = (node) => {
    switch (node.kind) {
      case SyntaxKind.ImportDeclaration: {
        const clause = node.importClause;
        const named = clause?.namedBindings?.kind === SyntaxKind.NamedImports ? clause.namedBindings.elements : [];
        const typeOnly = !!clause && (clause.isTypeOnly || (!clause.name && allTypeOnly(named)));
        if (literalIn(node.moduleSpecifier)) add(literalIn(node.moduleSpecifier), typeOnly ? "type" : "import");
        return;
      }
      case SyntaxKind.ExportDeclaration: {
        const named = node.exportClause?.kind === SyntaxKind.NamedExports ? node.exportClause.elements : [];
        if (node.moduleSpecifier && literalIn(node.moduleSpecifier)) add(literalIn(node.moduleSpecifier), node.isTypeOnly || allTypeOnly(named) ? "type" : "import");
        return;
      }
      case SyntaxKind.ImportEqualsDeclaration:
        if (node.moduleReference.kind === SyntaxKind.ExternalModuleReference && literalIn(node.moduleReference.expression))
          add(literalIn(node.moduleReference.expression), node.isTypeOnly ? "type" : "import");
        return;
      case SyntaxKind.ImportType: {
        const literal = node.argument?.kind === SyntaxKind.LiteralType ? literalIn(node.argument.literal) : undefined;
        if (literal) add(literal, "type");
        break; // its type arguments may name more modules
      }
      case SyntaxKind.CallExpression: {
        const literal = node.expression.kind === SyntaxKind.ImportKeyword ? literalIn(node.arguments[0]) : undefined;
        if (literal) add(literal, "dynamic");
        break;
      }
      case SyntaxKind.ModuleDeclaration:
        // `declare module "./x.js" { … }` in a module augments (so knows) that module.
        if (node.name.kind === SyntaxKind.StringLiteral && sourceFile.externalModuleIndicator) add(node.name, "type");
        break;
    }
    node.forEachChild(visit);
  };
  visit(sourceFile);
  return found;
}

const parsed = new Map(); // file → { imports, errors }
{
  const config = path.join(root, "__check-layers__.tsconfig.json");
  const configText = JSON.stringify({
    compilerOptions: { noResolve: true, noLib: true, types: [], allowJs: false, skipLibCheck: true },
    files: files.map((f) => path.join(root, f)),
  });
  let api;
  try {
    api = new API({ cwd: root, fs: { readFile: (name) => (path.resolve(name) === config ? configText : undefined) } });
    const project = api.updateSnapshot({ openProjects: [config] }).getProject(config);
    if (!project) throw new Error("the parser opened no project");
    for (const file of files) {
      const sourceFile = project.program.getSourceFile(path.join(root, file));
      if (!sourceFile) throw new Error(`the parser did not read ${file}`);
      const errors = project.program
        .getSyntacticDiagnostics(path.join(root, file))
        .map((d) => `line ${sourceFile.getLineAndCharacterOfPosition(d.pos).line + 1}: ${d.text}`);
      parsed.set(file, { imports: importsOf(sourceFile), errors });
    }
  } catch (error) {
    fail(`cannot parse the sources: ${error?.stack ?? error}`);
  } finally {
    api?.close();
  }
}

// ── The graph ───────────────────────────────────────────────────────────────────────────────

const problems = { circles: [], violations: [], other: [] };
const edges = new Map(files.map((f) => [f, new Map()])); // file → target → { specifier, line, kinds }
let importCount = 0;

for (const file of files) {
  const { imports, errors } = parsed.get(file);
  for (const e of errors) problems.other.push(`${file}: does not parse (${e}); its imports cannot be checked`);
  const layer = layerOf(file);
  if (!layer) problems.other.push(`${file}: no layer rule covers this file (add one to LAYERS in scripts/check-layers.mjs)`);

  const seen = new Map(); // target → first import, kinds merged
  for (const imp of imports) {
    const relative = imp.specifier.startsWith(".") || imp.specifier.startsWith("/");
    const target = relative ? resolveRelative(file, imp.specifier) : `package:${packageOf(imp.specifier)}`;
    if (target === null) {
      problems.other.push(`${file}:${imp.line}: imports ${imp.specifier}, which resolves to no file`);
      continue;
    }
    const key = `${target}\0${imp.specifier}`;
    if (seen.has(key)) seen.get(key).kinds.add(imp.kind);
    else seen.set(key, { ...imp, target, relative, kinds: new Set([imp.kind]) });
  }

  for (const imp of seen.values()) {
    importCount++;
    const typeOnly = [...imp.kinds].every((k) => k === "type");
    const how = typeOnly ? " (type-only)" : imp.kinds.has("dynamic") && imp.kinds.size === 1 ? " (dynamic import)" : "";
    if (imp.relative) {
      if (fileSet.has(imp.target)) {
        const out = edges.get(file);
        if (!out.has(imp.target)) out.set(imp.target, { ...imp, typeOnly });
        else out.get(imp.target).typeOnly &&= typeOnly;
      }
      if (layer && !layer.may.some((glob) => matches(glob, imp.target)))
        problems.violations.push(
          `${file}:${imp.line}: imports ${imp.specifier} (${imp.target})${how}: ${layer.files} may import only ${layer.may.join(", ")}`,
        );
    } else {
      const pkg = imp.target.slice("package:".length);
      const rule = layer?.mayNot.find((pattern) => packageMatches(pattern, pkg));
      if (rule)
        problems.violations.push(
          `${file}:${imp.line}: imports ${imp.specifier}${how}: ${layer.files} may not import ${
            rule === "*" ? "any package (node:* included)" : layer.mayNot.join(", ")
          }`,
        );
    }
  }
}

// ── Circles: strongly connected components (Tarjan), each shown as cycles covering its imports ──

function stronglyConnected() {
  let counter = 0;
  const index = new Map(), low = new Map(), onStack = new Set(), stack = [], components = [];
  const connect = (v) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v).keys()) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component.sort());
    }
  };
  for (const f of files) if (!index.has(f)) connect(f);
  return components;
}

/** Shortest import path from → to inside the component, as a list of files. */
function shortestPath(from, to, members) {
  const previous = new Map([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const v = queue.shift();
    if (v === to) break;
    for (const w of [...edges.get(v).keys()].sort())
      if (members.has(w) && !previous.has(w)) {
        previous.set(w, v);
        queue.push(w);
      }
  }
  const route = [];
  for (let v = to; v !== null; v = previous.get(v)) route.unshift(v);
  return route;
}

for (const component of stronglyConnected().sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
  const members = new Set(component);
  if (component.length === 1 && !edges.get(component[0]).has(component[0])) continue;
  const covered = new Set();
  const cycles = [];
  for (const u of component)
    for (const v of [...edges.get(u).keys()].sort()) {
      if (!members.has(v) || covered.has(`${u}\0${v}`)) continue;
      const loop = u === v ? [u, u] : [u, ...shortestPath(v, u, members)];
      for (let i = 0; i + 1 < loop.length; i++) covered.add(`${loop[i]}\0${loop[i + 1]}`);
      // Start each cycle at its first file in sort order, so the same circle always reads the same.
      const ring = loop.slice(0, -1);
      const start = ring.indexOf([...ring].sort()[0]);
      const rotated = [...ring.slice(start), ...ring.slice(0, start)];
      const typeEdges = rotated.filter((f, i) => edges.get(f).get(rotated[(i + 1) % rotated.length]).typeOnly).length;
      const note = typeEdges === rotated.length ? " (type-only)" : typeEdges > 0 ? ` (${typeEdges} of ${rotated.length} imports type-only)` : "";
      cycles.push(`${[...rotated, rotated[0]].join(" → ")}${note}`);
    }
  problems.circles.push({ component, cycles: [...new Set(cycles)] });
}

// ── Report ──────────────────────────────────────────────────────────────────────────────────

const total = problems.circles.length + problems.violations.length + problems.other.length;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
if (total === 0) {
  console.log(`layers: ${files.length} files, ${importCount} imports, no circles, no upward imports`);
} else {
  const lines = [
    `layers: ${files.length} files, ${importCount} imports: ${plural(problems.circles.length, "import circle")}, ` +
      `${plural(problems.violations.length, "layer violation")}, ${plural(problems.other.length, "other problem")}`,
  ];
  if (problems.circles.length) {
    lines.push("", "Import circles:");
    for (const { component, cycles } of problems.circles) {
      if (cycles.length === 1) lines.push(`  ${cycles[0]}`);
      else {
        lines.push(`  circle of ${component.length} files (${component.join(", ")}), by ${cycles.length} cycles:`);
        for (const cycle of cycles) lines.push(`    ${cycle}`);
      }
    }
  }
  if (problems.violations.length) lines.push("", "Layer violations:", ...problems.violations.map((v) => `  ${v}`));
  if (problems.other.length) lines.push("", "Other problems:", ...problems.other.map((o) => `  ${o}`));
  console.log(lines.join("\n"));
  process.exitCode = 1; // not process.exit(): let a long report drain into a pipe first
}
