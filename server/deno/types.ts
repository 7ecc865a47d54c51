/**
 * The little of Deno's API the adapter uses, declared here: a Node build must not need Deno's types.
 */

export interface DenoHttpServer {
  readonly addr: { port: number };
  readonly finished: Promise<void>;
  shutdown(): Promise<void>;
}

export interface DenoServeOptions {
  port: number;
  hostname: string;
  onListen(addr: { port: number }): void;
  onError(e: unknown): Response;
  signal: AbortSignal;
}

export interface DenoGlobal {
  readonly version: { deno: string };
  serve(options: DenoServeOptions, handler: (req: Request) => Response | Promise<Response>): DenoHttpServer;
  upgradeWebSocket(req: Request, options?: { idleTimeout?: number }): { socket: WebSocket; response: Response };
}

/** Deno, when this runs on it. */
export function denoGlobal(): DenoGlobal | undefined {
  return (globalThis as { Deno?: DenoGlobal }).Deno;
}
