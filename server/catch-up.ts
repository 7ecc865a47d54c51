import type { StatusData } from "../src/envelope.js";
import type { Backend } from "./backend.js";
import { allowed, type Identity } from "./identity.js";
import { Outgoing } from "./outgoing.js";

/** What a subscriber is owed from the backlog, read after it was registered for live messages. */
export interface CatchUp {
  /** Backlog messages it may see, in global order. */
  messages: Outgoing[];
  /** Where each channel stands after `messages` (including filtered entries passed over). */
  positions: Map<string, number>;
  /** Where each channel started, before `messages` (an SSE stream's first event). */
  start: Map<string, number>;
  epoch: string;
  /** Channels whose asked position could not be honoured (another epoch, trimmed, beyond the end). */
  reset: string[];
  /** Channels the client must be told about: asked -1, reset, or advanced past filtered entries. */
  told: Set<string>;
  /** Whether the client's epoch was absent-but-asked-for or different: it must be told the epoch. */
  tellEpoch: boolean;
}

/**
 * DESIGN §2: -1 new only (told the current id), -N the last N-1, k >= 0 everything after k, k beyond
 * the end means the bus was reset (treated as -1, told). A client from another epoch gets the new
 * epoch's whole backlog. A gap before the first retained message is reported, never hidden.
 */
export async function catchUp(
  backend: Backend,
  asked: Map<string, number>,
  clientEpoch: string | undefined,
  who: Identity,
): Promise<CatchUp> {
  // A reset between the snapshot and the backlog reads mixes two epochs: positions from the old one
  // with an empty new backlog would make the subscriber skip the new epoch's first messages. Read again.
  for (let attempt = 1; ; attempt++) {
    const result = await catchUpOnce(backend, asked, clientEpoch, who);
    if (result.epoch === backend.epoch || attempt >= 3) return result;
  }
}

async function catchUpOnce(
  backend: Backend,
  asked: Map<string, number>,
  clientEpoch: string | undefined,
  who: Identity,
): Promise<CatchUp> {
  const snap = await backend.snapshot(asked.keys());
  const otherEpoch = clientEpoch !== undefined && clientEpoch !== "" && clientEpoch !== snap.epoch;
  const result: CatchUp = {
    messages: [],
    positions: new Map(),
    start: new Map(),
    epoch: snap.epoch,
    reset: [],
    told: new Set(),
    tellEpoch: clientEpoch !== undefined && clientEpoch !== snap.epoch,
  };
  let channelsWithBacklog = 0;
  for (const [channel, want] of asked) {
    const last = snap.lastIds.get(channel) ?? 0;
    let from: number;
    let expectContinuity = false;
    if (want === -1) {
      from = last;
      result.told.add(channel);
    } else if (want < -1) {
      from = Math.max(0, last + want + 1);
    } else if (otherEpoch) {
      from = 0;
      expectContinuity = true;
      result.reset.push(channel);
      result.told.add(channel);
    } else if (want > last) {
      from = last;
      result.reset.push(channel);
      result.told.add(channel);
    } else {
      from = want;
      expectContinuity = true;
    }
    result.start.set(channel, from);
    let pos = from;
    if (from < last) {
      const backlog = await backend.backlog(channel, from);
      const first = backlog.length ? backlog[0].message_id : last + 1;
      if (expectContinuity && first > from + 1 && !result.reset.includes(channel)) {
        result.reset.push(channel);
        result.told.add(channel);
      }
      let delivered = pos;
      for (const m of backlog) {
        pos = m.message_id;
        if (allowed(m, who)) {
          result.messages.push(new Outgoing(m));
          delivered = pos;
        }
      }
      if (delivered !== pos) result.told.add(channel);
      if (backlog.length) channelsWithBacklog++;
    }
    result.positions.set(channel, pos);
  }
  if (channelsWithBacklog > 1) result.messages.sort((a, b) => a.message.global_id - b.message.global_id);
  return result;
}

/** The `/__status` a poll, long-poll or WebSocket batch ends with, or null when there is nothing to say. */
export function tailStatus(c: CatchUp): StatusData | null {
  if (!c.told.size && !c.tellEpoch) return null;
  const data: StatusData = {};
  for (const ch of c.told) data[ch] = c.positions.get(ch);
  if (c.tellEpoch) data.__epoch = c.epoch;
  if (c.reset.length) data.__reset = c.reset;
  return data;
}
