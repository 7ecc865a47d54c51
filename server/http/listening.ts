import type { Hono } from "hono";

export interface DrainOptions {
  /** Over how long connections are told to move, in ms. Default: the `drainWindow` option. */
  window?: number;
  /** How long the health check fails first, in ms. Default: the `drainDelay` option. */
  delay?: number;
  /** Called when the delay is over, just before the first connections are told (a server stops accepting then). */
  onMove?: () => void;
}

/** What a runtime adapter's `listen` needs of the bus (the facade gives it; no adapter sees MessageBus). */
export interface RuntimeLink {
  readonly base: string;
  readonly maxFrameBytes: number;
  readonly maxBufferedBytes: number;
  /** The routes mounted at `base` in an app of their own, for when no app is given. */
  mounted(): Hono;
  report(e: unknown): void;
  /** Closes the bus: held polls answered, streams ended, sockets closed, the store let go. */
  close(): Promise<void>;
  /** The bus's drain: connections told to move, spread over the window. */
  drain(options?: DrainOptions): Promise<void>;
}

/** A server `bus.listen()` started, on whichever runtime. */
export interface Served {
  /** Which server runs it: node:http + `ws`, `Bun.serve`, or `Deno.serve`. */
  readonly runtime: "node" | "bun" | "deno";
  /** The runtime's server: node:http's Server, Bun's Server, Deno's HttpServer. */
  server: unknown;
  port: number;
  url: string;
  /**
   * The bus's `drain`: the health check fails; after `delay` ms no new connection is accepted and
   * those held are told to move, spread over `window` ms. Resolves when every one was told; close() then.
   */
  drain(options?: Omit<DrainOptions, "onMove">): Promise<void>;
  /** Stops accepting, ends every connection, and closes the bus. */
  close(): Promise<void>;
}

/** The URL a server bound to `hostname` on `port` is reached at. */
export function serverUrl(hostname: string, port: number): string {
  return `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/**
 * How a runtime's server stops: `stopAccepting` once (a drain calls it when the delay is over, close
 * again), then after the bus is closed `closeAll` cuts what is still open after `graceMs`.
 */
export function servedBy(
  runtime: Served["runtime"],
  link: RuntimeLink,
  port: number,
  url: string,
  native: unknown,
  server: { stopAccepting(): Promise<void>; closeAll(): void },
  graceMs = 1000,
): Served {
  let stopped: Promise<void> | undefined;
  const stopAccepting = () => (stopped ??= server.stopAccepting());
  return {
    runtime,
    server: native,
    port,
    url,
    async drain(options) {
      await link.drain({ ...options, onMove: () => void stopAccepting() });
    },
    async close() {
      await link.close();
      // Held polls were just answered and streams ended; their last bytes get a grace period.
      let cut: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopAccepting(), new Promise<void>((r) => (cut = setTimeout(r, graceMs)))]);
      clearTimeout(cut);
      server.closeAll();
    },
  };
}
