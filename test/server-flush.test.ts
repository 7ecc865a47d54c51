import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { WsClient, wsUrl } from "./fixtures/clients.js";
import { startServer, type TestServer } from "./helpers/server.js";

/**
 * The adaptive flush (flush-pacer.ts): an idle bus writes a message within the turn it was
 * published in; a busy one holds its flushes so each connection gets several messages per write.
 * Counted in event-loop turns and in frames, never in time.
 */

const MESSAGES = 60;
const turn = () => new Promise<void>((r) => setImmediate(r));

let server: TestServer | undefined;
let client: WsClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await server?.close();
  server = undefined;
});

async function subscribed(s: TestServer, id: string): Promise<WsClient> {
  const c = new WsClient(wsUrl(s.base, id));
  await c.opened;
  c.send({ subscribe: { "/load": -1 } });
  // The welcome, then the subscription's answer (where the channel stands).
  await c.until(() => c.frames.length >= 2, "the subscription's answer");
  c.frames.length = 0;
  return c;
}

/** A server-side subscriber that keeps the loop busy for `ms` per message, as many connections would. */
function busyWith(s: TestServer, ms: number): void {
  s.bus.subscribe("/load", () => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  });
}

/** Publishes one message per event-loop turn; resolves with what the client got, once it got all. */
async function publishPerTurn(s: TestServer, c: WsClient): Promise<Message[][]> {
  for (let i = 1; i <= MESSAGES; i++) {
    await s.bus.publish("/load", { i });
    await turn();
  }
  await c.until(() => c.messages().length >= MESSAGES, "every message");
  return c.frames as Message[][];
}

function expectAllInOrder(frames: Message[][]): void {
  const got = frames.flat();
  expect(got.map((m) => m.message_id)).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
  expect(got.map((m) => (m.data as { i: number }).i)).toEqual(Array.from({ length: MESSAGES }, (_, i) => i + 1));
}

describe("adaptive flush", () => {
  it("an idle bus writes each message within one event-loop turn of its publish", async () => {
    server = await startServer();
    client = await subscribed(server, "idle");
    for (let i = 1; i <= 20; i++) {
      // Idle: publishes far apart (50 ms) next to a flush to one socket. (Published one per turn,
      // a flush stretched past 1 ms by a loaded machine would rightly count as busy; 20 ms apart,
      // one preempted for 10 ms once did, on two cores running 21 suites.)
      await new Promise((r) => setTimeout(r, 50));
      const before = server.bus.stats().delivered;
      await server.bus.publish("/load", { i });
      await turn();
      expect(server.bus.stats().delivered).toBe(before + 1);
    }
    await client.until(() => client!.messages().length >= 20, "every message");
    expect(client.frames).toHaveLength(20);
  });

  it("a busy bus puts several messages in one write per socket, none lost or reordered", async () => {
    server = await startServer({ flushDelay: 20 });
    busyWith(server, 2);
    client = await subscribed(server, "busy");
    const frames = await publishPerTurn(server, client);
    expectAllInOrder(frames);
    // Held flushes: far fewer writes than messages.
    expect(frames.length).toBeLessThan(MESSAGES / 2);
  });

  it("with flushDelay 0 the same load gets one write per message", async () => {
    server = await startServer({ flushDelay: 0 });
    busyWith(server, 2);
    client = await subscribed(server, "never-held");
    const frames = await publishPerTurn(server, client);
    expectAllInOrder(frames);
    expect(frames).toHaveLength(MESSAGES);
  });
});
