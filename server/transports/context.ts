import type { Limits } from "../../src/limits.js";
import type { Backend } from "../core/backend.js";
import type { Hub } from "../core/hub.js";
import type { RequestRunner } from "../core/requests.js";
import type { Identity } from "../core/targeting.js";

/** A held poll as the `__seq` rule sees it: a newer one of the same slot replaces an older one. */
export interface HeldPollSlot {
  readonly seq: number;
  readonly who: Identity;
  close(): void;
}

/** What a transport may use of the bus: its hub, its store and its settings. Nothing else. */
export interface TransportContext {
  readonly hub: Hub;
  readonly backend: Backend;
  readonly limits: Limits;
  /** ms a long-poll is held. */
  readonly longPollTimeout: number;
  /** Polls are held (long-polling); false answers every poll at once. */
  readonly longPolling: boolean;
  /** Long-polls may answer as chunked streams. */
  readonly chunkedEncoding: boolean;
  /** Held polls by slot (client id and identity), for message_bus's `__seq` rule. */
  readonly longPolls: Map<string, HeldPollSlot>;
  /** Runs client requests (docs/protocol.md#12-requests), whichever transport brought them. */
  readonly requests: RequestRunner;
  /** Where unexpected errors go (never a client's mistake). */
  report(e: unknown): void;
  /** While the bus drains: within how many ms a client is to come back elsewhere; null otherwise. */
  drainHint(): number | null;
  /**
   * Within how many ms a client cut without a word (a crash) should reconnect, at a random moment:
   * the more connections this process holds, the wider, so they do not all come back at once.
   */
  spreadMs(): number;
}
