import { afterEach, describe, expect, it } from "vitest";
import type { Message } from "../src/envelope.js";
import { follow, TRANSPORTS, type Followed } from "./fixtures/follow.js";
import { CHANNELS, payload } from "./fixtures/payloads.js";
import { startServer, type TestServer } from "./helpers/server.js";

const PER_CHANNEL = 100;

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Publishes round-robin over the channels, yielding now and then so live batches interleave. */
async function publishAll(s: TestServer): Promise<void> {
  let n = 0;
  for (let i = 0; i < PER_CHANNEL; i++) {
    for (const ch of CHANNELS) {
      const r = await s.bus.publish(ch, payload(ch, i));
      expect(r.messageId).toBe(i + 1);
      if (++n % 7 === 0) await new Promise((r) => setImmediate(r));
    }
  }
}

const allIn = (f: Followed) => CHANNELS.every((ch) => f.positions[ch] === PER_CHANNEL);

/** Per channel: ids 1..100 in order, each once, data deep-equal (and so byte-exact) to what was published. */
function expectExact(messages: Message[]): void {
  const globals = new Set<number>();
  for (const ch of CHANNELS) {
    const got = messages.filter((m) => m.channel === ch);
    expect(got.map((m) => m.message_id)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i + 1));
    expect(got.map((m) => m.data)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => payload(ch, i)));
    for (const m of got) globals.add(m.global_id);
  }
  expect(messages.length).toBe(CHANNELS.length * PER_CHANNEL);
  expect(globals.size).toBe(CHANNELS.length * PER_CHANNEL);
}

describe.each(TRANSPORTS)("%s delivers 3 channels × 100 messages", (transport) => {
  it("live: subscribed at -1, then published", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    const start = Object.fromEntries(CHANNELS.map((ch) => [ch, -1]));
    let subscribed!: () => void;
    const ready = new Promise<void>((r) => (subscribed = r));
    const following = follow(transport, server.base, `live-${transport}`, start, allIn, { onSubscribed: subscribed });
    following.catch(() => subscribed());
    await ready;
    await publishAll(server);
    const f = await following;
    expectExact(f.messages);
    // -1 is answered with where each channel stands (0: nothing published yet).
    // (A WebSocket's welcome status comes first and names only the epoch.)
    expect(f.statuses.find((st) => CHANNELS[0] in st)).toMatchObject(Object.fromEntries(CHANNELS.map((ch) => [ch, 0])));
  });

  it("backlog: published first, subscribed at 0", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    await publishAll(server);
    const start = Object.fromEntries(CHANNELS.map((ch) => [ch, 0]));
    const f = await follow(transport, server.base, `backlog-${transport}`, start, allIn);
    expectExact(f.messages);
  });
});

describe("switching transports with positions", () => {
  it("a client that hops through every transport, carrying its positions, gets each message once", async () => {
    server = await startServer({ longPollTimeout: 2000 });
    const s = server;
    const positions = Object.fromEntries(CHANNELS.map((ch) => [ch, 0]));
    const received: Message[] = [];
    let next = 0;
    const publishSome = async (n: number) => {
      for (let k = 0; k < n; k++, next++) for (const ch of CHANNELS) await s.bus.publish(ch, payload(ch, next));
    };
    await publishSome(10);
    for (const transport of [...TRANSPORTS, ...TRANSPORTS]) {
      const target = next;
      const f = await follow(transport, s.base, `hop-${transport}`, positions, (x) => CHANNELS.every((ch) => x.positions[ch] === target));
      received.push(...f.messages);
      Object.assign(positions, f.positions);
      await publishSome(10); // published while the client is between transports
    }
    const f = await follow("websocket", s.base, "hop-last", positions, (x) => CHANNELS.every((ch) => x.positions[ch] === next));
    received.push(...f.messages);
    expect(next).toBe(PER_CHANNEL + 10);
    for (const ch of CHANNELS) {
      const got = received.filter((m) => m.channel === ch);
      expect(got.map((m) => m.message_id)).toEqual(Array.from({ length: next }, (_, i) => i + 1));
      expect(got.map((m) => m.data)).toEqual(Array.from({ length: next }, (_, i) => payload(ch, i)));
    }
  });
});
