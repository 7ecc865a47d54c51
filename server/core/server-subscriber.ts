import type { StoredMessage } from "./backend.js";
import type { Outgoing } from "./outgoing.js";
import { Subscriber, type SubscriberHost } from "./subscriber.js";

/** A subscriber inside the server (`bus.subscribe`): sees every message, targeted or not. */
export class ServerSubscriber extends Subscriber {
  readonly kind = "server";

  constructor(
    hub: SubscriberHost,
    private readonly fn: (m: StoredMessage) => void,
    private readonly report: (e: unknown) => void,
  ) {
    super(hub, { clientId: "server", all: true });
  }

  send(batch: readonly Outgoing[]): void {
    for (const o of batch) {
      if (this.closed) return;
      try {
        this.fn(o.message);
      } catch (e) {
        this.report(e);
      }
    }
  }

  close(): void {
    this.closed = true;
    this.leave();
  }

  /** A server-side subscriber stays with its process. */
  move(): void {}
}
