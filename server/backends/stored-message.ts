import type { AppendRequest, StoredMessage, Targets } from "../core/backend.js";

/**
 * How the Redis and PostgreSQL backends keep a message: the ids, a small JSON "meta" holding the
 * channel and targets, and the publisher's JSON text of `data`, stored as is. Reading a message back
 * never re-encodes `data`; it is parsed only if someone asks for it (a server-side subscriber), so
 * fan-out to browsers costs no JSON work per process.
 */
export interface Meta {
  c: string;
  u?: Targets["user_ids"];
  g?: Targets["group_ids"];
  k?: Targets["client_ids"];
  s?: string;
}

export function encodeMeta(req: AppendRequest): string {
  const meta: Meta = { c: req.channel };
  if (req.user_ids?.length) meta.u = req.user_ids;
  if (req.group_ids?.length) meta.g = req.group_ids;
  if (req.client_ids?.length) meta.k = req.client_ids;
  if (req.site_id !== undefined) meta.s = req.site_id;
  return JSON.stringify(meta);
}

/** The targets of a request, only those set (what the memory backend keeps, too). */
export function targetsOf(req: Targets): Targets {
  const t: Targets = {};
  if (req.user_ids?.length) t.user_ids = req.user_ids;
  if (req.group_ids?.length) t.group_ids = req.group_ids;
  if (req.client_ids?.length) t.client_ids = req.client_ids;
  if (req.site_id !== undefined) t.site_id = req.site_id;
  return t;
}

/**
 * A StoredMessage whose `data` is parsed from `dataJson` on first access. `dataJson` is not
 * enumerable (as in the memory backend), so messages from every backend compare equal.
 */
export function storedMessage(
  globalId: number,
  messageId: number,
  meta: Meta | string,
  dataJson: string,
  known?: { data: unknown },
): StoredMessage {
  const m = typeof meta === "string" ? (JSON.parse(meta) as Meta) : meta;
  const message = { global_id: globalId, message_id: messageId, channel: m.c } as StoredMessage;
  if (known) message.data = known.data;
  else {
    Object.defineProperty(message, "data", {
      enumerable: true,
      configurable: true,
      get() {
        const value: unknown = JSON.parse(dataJson);
        Object.defineProperty(message, "data", { value, enumerable: true, writable: true, configurable: true });
        return value;
      },
      set(value: unknown) {
        Object.defineProperty(message, "data", { value, enumerable: true, writable: true, configurable: true });
      },
    });
  }
  Object.defineProperty(message, "dataJson", { value: dataJson, enumerable: false });
  if (m.u) message.user_ids = m.u;
  if (m.g) message.group_ids = m.g;
  if (m.k) message.client_ids = m.k;
  if (m.s !== undefined) message.site_id = m.s;
  return message;
}

/** The message a publisher gets back, built from its own request (nothing to parse). */
export function publishedMessage(req: AppendRequest, globalId: number, messageId: number): StoredMessage {
  const message = storedMessage(globalId, messageId, { c: req.channel }, req.dataJson, { data: req.data });
  return Object.assign(message, targetsOf(req));
}
