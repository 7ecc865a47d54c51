import type { Outgoing } from "./outgoing.js";

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
