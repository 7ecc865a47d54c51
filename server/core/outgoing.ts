import { encodeMessage } from "../../src/envelope.js";
import { encodeChunk } from "../../src/wire.js";
import type { StoredMessage } from "./backend.js";
import { isTargeted } from "./targeting.js";
import { SharedBytes } from "../node/chunk-framing.js";
import { textFrame } from "../node/ws-frames.js";

/**
 * A message on its way out, with its encodings made once and shared by every subscriber (DESIGN §6).
 */
export class Outgoing {
  readonly targeted: boolean;
  private _json?: string;
  private _array?: string;
  private _chunk?: string;
  private _frame?: Buffer;
  private _sse?: SharedBytes;
  private _sseEpoch?: string;

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

  /** The WebSocket frame holding `[json]`, the same bytes for every socket. */
  get wsFrame(): Buffer {
    return (this._frame ??= textFrame(this.array));
  }

  /**
   * The SSE event of a stream subscribed to this channel alone: its id (`epoch:id`) is then the same
   * for every such stream, so the event is encoded once.
   */
  sseSingle(epoch: string): SharedBytes {
    if (this._sse === undefined || this._sseEpoch !== epoch) {
      this._sse = new SharedBytes(Buffer.from(`id: ${epoch}:${this.id}\ndata: ${this.json}\n\n`));
      this._sseEpoch = epoch;
    }
    return this._sse;
  }
}

/**
 * The subscribers of one flush mostly hold the same batch: its encoding is kept while the same
 * messages (and key, e.g. the epoch) come again, so a burst is encoded once, not once per subscriber.
 */
export class BatchMemo<T> {
  private last: readonly Outgoing[] = [];
  private key = "";
  private value: T | undefined;

  get(batch: readonly Outgoing[], key: string, encode: (batch: readonly Outgoing[]) => T): T {
    const last = this.last;
    if (this.value !== undefined && key === this.key && last.length === batch.length) {
      let same = true;
      for (let i = 0; i < batch.length && same; i++) same = batch[i] === last[i];
      if (same) return this.value;
    }
    this.last = batch;
    this.key = key;
    return (this.value = encode(batch));
  }
}
