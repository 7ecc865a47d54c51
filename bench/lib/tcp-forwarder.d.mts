// Types for tcp-forwarder.mjs, so the TypeScript tests share the bench's load balancer.
export interface Arrival {
  at: number;
  target: number;
  kind: "websocket" | "sse" | "long-poll" | "poll" | "other" | null;
}

export interface Forwarder {
  port: number;
  readonly target: number;
  arrivals: Arrival[];
  switchTo(port: number): number;
  open(): number;
  close(): Promise<void>;
}

export function nowMs(): number;
export function classify(head: string): Arrival["kind"];
export function startForwarder(options: { target: number; host?: string; backlog?: number }): Promise<Forwarder>;
