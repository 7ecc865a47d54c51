import type { IncomingMessage } from "node:http";
import type { WsPeer, WsSocket } from "../transports/io.js";

export type OpenSocket = (socket: WsSocket) => WsPeer;

/**
 * Upgrades pass through the Hono app like any request; the route leaves its verdict here (how to
 * open the subscriber, or nothing) for `attach` to act on once the app has answered.
 */
const pending = new WeakMap<IncomingMessage, OpenSocket | null>();

export function expectUpgrade(req: IncomingMessage): void {
  pending.set(req, null);
}

export function upgradeExpected(req: IncomingMessage): boolean {
  return pending.has(req);
}

export function acceptUpgrade(req: IncomingMessage, open: OpenSocket): void {
  pending.set(req, open);
}

export function takeUpgrade(req: IncomingMessage): OpenSocket | null {
  const open = pending.get(req) ?? null;
  pending.delete(req);
  return open;
}
