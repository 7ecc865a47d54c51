import type { Id, StoredMessage } from "./backend.js";

/** Who is asking, as the lookups said. Server-side subscribers see everything (`all`). */
export interface Identity {
  clientId: string;
  /** The other client ids the connection speaks for (`__clients`: tabs sharing one connection). */
  alsoFor?: readonly string[];
  userId?: Id | null;
  groupIds?: Id[] | null;
  siteId?: string | null;
  all?: boolean;
}

export function isTargeted(m: StoredMessage): boolean {
  return !!(m.user_ids?.length || m.group_ids?.length || m.client_ids?.length || m.site_id != null);
}

function speaksFor(who: Identity, id: string): boolean {
  return id === who.clientId || !!who.alsoFor?.includes(id);
}

/**
 * On a connection that speaks for several client ids, the ones a `client_ids` message is for, so
 * that the tab holding the connection hands it only to them (docs/protocol.md#14-shared-connections);
 * null when the message needs no tag (not aimed at client ids, or a connection that sent no `__clients`).
 */
export function addressees(m: StoredMessage, who: Identity): string[] | null {
  if (!m.client_ids?.length || !who.alsoFor) return null;
  return m.client_ids.filter((id) => speaksFor(who, id));
}

const same = (a: Id, b: Id | null | undefined) => b != null && String(a) === String(b);

/**
 * message_bus's rule: the client id must match when listed; then the user OR one of the groups must
 * match when either is listed; the site must match when set.
 */
export function allowed(m: StoredMessage, who: Identity): boolean {
  if (who.all) return true;
  if (m.site_id != null && m.site_id !== who.siteId) return false;
  if (m.client_ids?.length && !m.client_ids.some((id) => speaksFor(who, id))) return false;
  const users = m.user_ids?.length ? m.user_ids : null;
  const groups = m.group_ids?.length ? m.group_ids : null;
  if (!users && !groups) return true;
  if (users && users.some((u) => same(u, who.userId))) return true;
  if (groups && who.groupIds?.length && groups.some((g) => who.groupIds!.some((h) => same(g, h)))) return true;
  return false;
}
