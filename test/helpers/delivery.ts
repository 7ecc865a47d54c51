/** What raw subscribers received, checked against what the publishers were told. */
import type { Ack } from "./publisher.js";
import type { RawSubscriber, Received } from "./raw-subscribers.js";

/**
 * Per channel, message ids 1, 2, 3, … in order and each once; the same messages (ids, global ids,
 * data) on every process and transport; every acknowledged message among them; nothing for a
 * channel not subscribed. `exact`: nothing but acknowledged ones (no outage, so no publish of
 * unknown outcome).
 */
export function deliveryProblems(subs: RawSubscriber[], acks: Ack[], exact: boolean): string[] {
  const problems: string[] = [];
  const acked = new Map<string, Ack[]>();
  for (const a of acks) {
    if (!acked.has(a.channel)) acked.set(a.channel, []);
    acked.get(a.channel)!.push(a);
  }
  const reference = new Map<string, { sub: string; list: Received[] }>();
  for (const s of subs) {
    for (const m of s.strays) problems.push(`${s.name}: got ${JSON.stringify(m)}, not subscribed to ${m.channel}`);
    for (const [ch, got] of s.received) {
      const where = `${s.name} ${ch}`;
      const holes = got.findIndex((m, i) => m.message_id !== i + 1);
      if (holes >= 0) problems.push(`${where}: message #${holes} has id ${got[holes].message_id} (duplicate, gap or out of order)`);
      for (const a of acked.get(ch) ?? []) {
        const m = got[a.message_id - 1];
        if (!m || m.global_id !== a.global_id || JSON.stringify(m.data) !== JSON.stringify(a.data)) {
          problems.push(`${where}: acknowledged ${JSON.stringify(a)} not delivered as such (got ${JSON.stringify(m)})`);
          break;
        }
      }
      if (exact && got.length !== (acked.get(ch)?.length ?? 0)) problems.push(`${where}: ${got.length} messages, ${acked.get(ch)?.length} acknowledged`);
      const ref = reference.get(ch);
      if (!ref) reference.set(ch, { sub: s.name, list: got });
      else if (JSON.stringify(ref.list) !== JSON.stringify(got)) problems.push(`${where}: differs from ${ref.sub}`);
    }
  }
  return problems;
}

/** Whether every subscriber holds every acknowledged message of its channels. */
export function allDelivered(subs: RawSubscriber[], acks: Ack[]): boolean {
  const last = new Map<string, number>();
  for (const a of acks) last.set(a.channel, Math.max(last.get(a.channel) ?? 0, a.message_id));
  return subs.every((s) => [...s.received].every(([ch, got]) => got.length >= (last.get(ch) ?? 0)));
}

/** Each subscriber's count, for a timeout message. */
export function counts(subs: RawSubscriber[]): string {
  return subs.map((s) => `${s.name}=${s.count()}`).join(" ");
}
