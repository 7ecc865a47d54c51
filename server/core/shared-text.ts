/**
 * Text that many connections are sent unchanged (a live message's WebSocket frame, a one-channel SSE
 * event). The core makes it once per message; the runtime that writes it may keep its own prepared
 * form beside it (on Node: the bytes with their HTTP chunk or WebSocket framing), also made once.
 * Each instance goes to one kind of connection, so `prepared` has one meaning per instance.
 */
export class SharedText {
  prepared: unknown = undefined;

  constructor(readonly text: string) {}

  /** The runtime's form of this text, made on first use. */
  prepare<T>(make: (text: string) => T): T {
    return (this.prepared ??= make(this.text)) as T;
  }

  static concat(list: readonly SharedText[]): SharedText {
    return new SharedText(list.map((t) => t.text).join(""));
  }
}
