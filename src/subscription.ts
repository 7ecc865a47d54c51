import { checkChannel, CLIENT_ID_RE, parsePosition } from "./channel.js";
import { ProtocolError } from "./errors.js";
import { DEFAULT_LIMITS } from "./limits.js";
import { quote } from "./text.js";

/** What a client asks for, the same on every transport: channel → position, plus control keys (docs/protocol.md#33-subscriptions). */
export interface Subscription {
  positions: Map<string, number>;
  /** message_bus's `__seq`: a newer long-poll with the same client id replaces an older one. */
  seq?: number;
  /** The epoch the positions belong to; absent for clients that do not know epochs (message-bus-client). */
  epoch?: string;
  /** `__clients`: the other client ids this connection speaks for (tabs sharing it); absent when not sent. */
  clients?: string[];
}

export interface SubscriptionLimits {
  maxChannels: number;
  maxChannelBytes: number;
  /** Default DEFAULT_LIMITS.maxSharedClients. */
  maxSharedClients?: number;
}

const LIMITS: SubscriptionLimits = DEFAULT_LIMITS;

function control(sub: Subscription, key: string, value: unknown, limits: SubscriptionLimits): boolean {
  if (key === "__seq") {
    // Only a number or a decimal string: Number() of a nested array recurses through toString.
    const seq = typeof value === "number" ? value : typeof value === "string" && /^-?\d{1,16}$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(seq)) throw new ProtocolError(`bad __seq: ${quote(value, 40)} is not an integer`);
    sub.seq = seq;
    return true;
  }
  if (key === "__epoch") {
    if (typeof value !== "string" || value.length > 64) throw new ProtocolError("bad __epoch");
    // "" is a client that knows epochs but not this one yet: it must be told (cometbus/client sends it).
    sub.epoch = value;
    return true;
  }
  if (key === "__clients") {
    sub.clients = parseClients(value, limits.maxSharedClients ?? DEFAULT_LIMITS.maxSharedClients);
    return true;
  }
  return false;
}

/** `"id1,id2"` (a string, so that form pairs carry it too): each a client id, at most `max`, "" for none. */
function parseClients(value: unknown, max: number): string[] {
  if (typeof value !== "string") throw new ProtocolError("bad __clients: a comma-separated string of client ids");
  const ids = value === "" ? [] : value.split(",");
  if (ids.length > max) throw new ProtocolError(`too many __clients: at most ${max} on one connection`);
  for (const id of ids) {
    if (!CLIENT_ID_RE.test(id)) throw new ProtocolError(`bad __clients: ${quote(id, 40)} is not a client id (1-64 characters of A-Z a-z 0-9 _ -)`);
  }
  return [...new Set(ids)];
}

function add(sub: Subscription, key: string, value: unknown, limits: SubscriptionLimits): void {
  const channel = checkChannel(key, limits.maxChannelBytes);
  sub.positions.set(channel, parsePosition(value, channel));
  if (sub.positions.size > limits.maxChannels) {
    throw new ProtocolError(`too many channels: at most ${limits.maxChannels} in one subscription`);
  }
}

/**
 * From a JSON object (`{"/chat": 5, "__seq": 3}`) or form/query pairs. In a body every key must be a
 * channel or a control key; in a query string other keys (`dlp=t`, cache busters) are passed over.
 */
export function parseSubscription(
  input: URLSearchParams | Record<string, unknown> | unknown,
  { lenient = false, limits = LIMITS }: { lenient?: boolean; limits?: SubscriptionLimits } = {},
): Subscription {
  const sub: Subscription = { positions: new Map() };
  if (input instanceof URLSearchParams) {
    for (const [key, value] of input) {
      if (control(sub, key, value, limits)) continue;
      if (lenient && !key.startsWith("/")) continue;
      add(sub, key, value, limits);
    }
    return sub;
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new ProtocolError('a subscription is an object of channel → last id, e.g. {"/chat": -1}');
  }
  for (const [key, value] of Object.entries(input)) {
    if (control(sub, key, value, limits)) continue;
    if (value !== null && typeof value === "object") throw new ProtocolError(`bad id for channel ${quote(key, 60)}: not a number`);
    add(sub, key, value, limits);
  }
  return sub;
}

/** The same subscription as a JSON object, for clients. */
export function subscriptionBody(positions: Iterable<[string, number]>, extra: { epoch?: string; seq?: number; clients?: readonly string[] } = {}) {
  const body: Record<string, number | string> = {};
  for (const [ch, pos] of positions) body[ch] = pos;
  // "" is sent too: the client knows epochs but not this one yet, so the server names it.
  if (extra.epoch !== undefined) body.__epoch = extra.epoch;
  if (extra.seq !== undefined) body.__seq = extra.seq;
  if (extra.clients !== undefined) body.__clients = extra.clients.join(",");
  return body;
}
