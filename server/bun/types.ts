/**
 * The little of Bun's API the adapter uses, declared here: Bun's own types are a package of their
 * own, and a Node build must not need them.
 */

export interface BunSocket<T> {
  readonly data: T;
  readonly readyState: number;
  /** -1: queued under backpressure, 0: dropped, > 0: bytes sent. */
  sendText(text: string): number;
  getBufferedAmount(): number;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export interface BunServer {
  readonly port: number;
  upgrade<T>(req: Request, options: { data: T }): boolean;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}

export interface BunWebSocketHandlers<T> {
  open(ws: BunSocket<T>): void;
  message(ws: BunSocket<T>, message: string | Uint8Array): void;
  drain(ws: BunSocket<T>): void;
  close(ws: BunSocket<T>, code: number, reason: string): void;
  maxPayloadLength: number;
  backpressureLimit: number;
  closeOnBackpressureLimit: boolean;
  perMessageDeflate: boolean;
  idleTimeout: number;
  sendPings: boolean;
}

export interface BunServeOptions<T> {
  port: number;
  hostname: string;
  idleTimeout: number;
  fetch(req: Request, server: BunServer): Response | Promise<Response | undefined> | undefined;
  error(e: unknown): Response;
  websocket: BunWebSocketHandlers<T>;
}

export interface BunGlobal {
  readonly version: string;
  serve<T>(options: BunServeOptions<T>): BunServer;
}

/** Bun, when this runs on it. */
export function bunGlobal(): BunGlobal | undefined {
  return (globalThis as { Bun?: BunGlobal }).Bun;
}
