import { encodeMessage } from "../src/envelope.js";
import { encodeChunk } from "../src/wire.js";
import type { StoredMessage } from "./backend.js";
import { isTargeted } from "./identity.js";

/**
 * A message on its way out, with its encodings made once and shared by every subscriber (DESIGN §6).
 */
export class Outgoing {
  readonly targeted: boolean;
  private _json?: string;
  private _array?: string;
  private _chunk?: string;

  constructor(readonly message: StoredMessage) {
    this.targeted = isTargeted(message);
  }

  get channel(): string {
    return this.message.channel;
  }

  get id(): number {
    return this.message.message_id;
  }

  /** The envelope as JSON. */
  get json(): string {
    if (this._json === undefined) {
      const m = this.message;
      this._json =
        m.dataJson !== undefined
          ? `{"global_id":${m.global_id},"message_id":${m.message_id},"channel":${JSON.stringify(m.channel)},"data":${m.dataJson}}`
          : encodeMessage(m);
    }
    return this._json;
  }

  /** `[json]`: a WebSocket frame or poll body holding just this message. */
  get array(): string {
    return (this._array ??= `[${this.json}]`);
  }

  /** A chunked long-poll chunk holding just this message. */
  get chunk(): string {
    return (this._chunk ??= encodeChunk(this.array));
  }
}
