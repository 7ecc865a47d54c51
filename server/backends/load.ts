import type { Backend } from "../core/backend.js";
import { MemoryBackend } from "./memory.js";

/**
 * The backend a bus was given: an instance as is, "memory", or a URL whose driver (ioredis, pg) is
 * imported only now, so a memory bus never loads either. `loaded` resolves once it can start.
 */
export function openBackend(spec: "memory" | string | Backend): { backend: Backend; loaded: Promise<void> } {
  if (typeof spec === "object") return { backend: spec, loaded: Promise.resolve() };
  if (spec === "memory") return { backend: new MemoryBackend(), loaded: Promise.resolve() };
  const lazy = new LazyBackend(spec);
  return { backend: lazy, loaded: lazy.load() };
}

/** Stands in for a backend whose driver is imported on first use. */
export class LazyBackend implements Backend {
  kind = "loading";
  private inner?: Backend;
  constructor(private readonly url: string) {}

  async load(): Promise<void> {
    let mod: { createBackend(url: string): Backend };
    if (/^rediss?(\+cluster)?:\/\//.test(this.url)) mod = await importDriver("./redis.js", "ioredis");
    else if (/^postgres(ql)?:\/\//.test(this.url)) mod = await importDriver("./postgres.js", "pg");
    else throw new Error(`cometbus: unknown backend "${this.url}": use "memory", redis://…, redis+cluster://… or postgres://…`);
    this.inner = mod.createBackend(this.url);
    this.kind = this.inner.kind;
  }
  private get b(): Backend {
    if (!this.inner) throw new Error("cometbus: backend not loaded");
    return this.inner;
  }
  get epoch() {
    return this.b.epoch;
  }
  start(...a: Parameters<Backend["start"]>) {
    return this.b.start(...a);
  }
  append(...a: Parameters<Backend["append"]>) {
    return this.b.append(...a);
  }
  backlog(...a: Parameters<Backend["backlog"]>) {
    return this.b.backlog(...a);
  }
  globalBacklog(...a: Parameters<Backend["globalBacklog"]>) {
    return this.b.globalBacklog(...a);
  }
  snapshot(...a: Parameters<Backend["snapshot"]>) {
    return this.b.snapshot(...a);
  }
  reset() {
    return this.b.reset();
  }
  close() {
    return this.inner ? this.inner.close() : Promise.resolve();
  }
}

/** The drivers are optional peer dependencies: an app that names a URL installs the one it uses. */
async function importDriver(path: string, driver: string): Promise<{ createBackend(url: string): Backend }> {
  try {
    return await import(path);
  } catch (e) {
    const missing = (e as { code?: string }).code === "ERR_MODULE_NOT_FOUND" && String((e as Error).message).includes(`'${driver}'`);
    if (missing) throw new Error(`cometbus: this backend needs the ${driver} package: npm install ${driver}`);
    throw e;
  }
}
