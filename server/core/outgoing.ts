import { encodeAddressed, encodeEnvelope, encodeMessage } from "../../src/envelope.js";
import { utf8Length } from "../../src/text.js";
import { encodeChunk, sseEvent, sseId } from "../../src/wire.js";
import type { StoredMessage } from "./backend.js";
import { SharedText } from "./shared-text.js";
import { addressees, isTargeted, type Identity } from "./targeting.js";

/**
 * A message on its way out, with its encodings (all from src/, the one definition of the wire)
 * made once and shared by every subscriber: encode a message once, never once per subscriber.
 */
export class Outgoing {
  readonly targeted: boolean;
  private _json?: string;
  private _bytes?: number;
  private _array?: string;
  private _chunk?: string;
  private _frame?: SharedText;
  private _sse?: SharedText;
  private _sseEpoch?: string;

  constructor(readonly message: StoredMessage) {
    this.targeted = isTargeted(message);
  }

  /**
   * The one Outgoing of a recent stored message, where the backend hands out the same object again
   * (the memory backend does): a thousand long-polls reading the message they just missed share its
   * encodings instead of making a thousand of their own. Only the latest RECENT are kept, so a long
   * backlog does not keep every message's encodings beside it.
   */
  static of(message: StoredMessage): Outgoing {
    let o = recent.get(message);
    if (!o) {
      recent.set(message, (o = new Outgoing(message)));
      if (recent.size > RECENT) recent.delete(recent.keys().next().value!);
    }
    return o;
  }

  get channel(): string {
    return this.message.channel;
  }

  get id(): number {
    return this.message.message_id;
  }

  /**
   * This message as `who` may get it: itself, or on a shared connection a copy naming the client ids
   * it is for (encoded for that subscriber alone: only client-targeted messages on shared connections).
   * The caller has checked `allowed`.
   */
  for(who: Identity): Outgoing {
    const ids = this.targeted ? addressees(this.message, who) : null;
    if (!ids) return this;
    const copy = new Outgoing(this.message);
    copy._json = encodeAddressed(this.json, ids);
    return copy;
  }

  /** The envelope as JSON. */
  get json(): string {
    if (this._json === undefined) {
      const m = this.message;
      this._json = m.dataJson !== undefined ? encodeEnvelope(m.global_id, m.message_id, m.channel, m.dataJson) : encodeMessage(m);
    }
    return this._json;
  }

  /** The envelope's size in UTF-8 bytes (what a catch-up page counts). */
  get bytes(): number {
    return (this._bytes ??= utf8Length(this.json));
  }

  /** `[json]`: a poll body holding just this message. */
  get array(): string {
    return (this._array ??= `[${this.json}]`);
  }

  /** A chunked long-poll chunk holding just this message. */
  get chunk(): string {
    return (this._chunk ??= encodeChunk(this.array));
  }

  /** The live WebSocket frame holding just this message, the same for every socket. */
  get frame(): SharedText {
    return (this._frame ??= new SharedText(this.array));
  }

  /**
   * The SSE event of a stream subscribed to this channel alone: its id (`epoch:id`) is then the same
   * for every such stream, so the event is encoded once.
   */
  sseSingle(epoch: string): SharedText {
    if (this._sse === undefined || this._sseEpoch !== epoch) {
      this._sse = new SharedText(sseEvent(sseId(epoch, [this.id]), this.json));
      this._sseEpoch = epoch;
    }
    return this._sse;
  }
}

/** How many recent messages keep their Outgoing for the catch-ups that read them next. */
const RECENT = 1024;
/** Oldest first (a Map keeps insertion order): the first key is the one to drop. */
const recent = new Map<StoredMessage, Outgoing>();
