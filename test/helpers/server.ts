import { MessageBus, type MessageBusOptions } from "../../server/index.js";
import type { Listening } from "../../server/node/listen.js";

export interface TestServer extends Listening {
  bus: MessageBus;
  base: string;
}

/** A real server on a random loopback port. Call `close()` in afterAll/afterEach. */
export async function startServer(options: MessageBusOptions = {}): Promise<TestServer> {
  const bus = new MessageBus({ onError: () => {}, ...options });
  await bus.ready();
  const l = await bus.listen(0, "127.0.0.1");
  return { ...l, bus, base: l.url + bus.options.base };
}

/** The poll held for a client id (any identity), as message_bus's `__seq` rule sees it. */
export function heldPoll(bus: MessageBus, clientId: string) {
  return [...bus.longPolls.values()].find((p) => p.who.clientId === clientId);
}
