/**
 * channel → position, in the order channels were added: the part of a Map a subscriber uses. Most
 * connections follow one channel, and a Map for one entry takes about 250 bytes (its hash table is
 * made for several); ten thousand idle connections each keep one. So the first channel is kept in
 * two fields, and a Map is made only when a second comes (the first stays first).
 */
export class Positions {
  private one: string | undefined;
  private onePos = 0;
  private map: Map<string, number> | null = null;

  get size(): number {
    return this.map ? this.map.size : this.one === undefined ? 0 : 1;
  }

  get(channel: string): number | undefined {
    if (this.map) return this.map.get(channel);
    return channel === this.one ? this.onePos : undefined;
  }

  has(channel: string): boolean {
    return this.map ? this.map.has(channel) : channel === this.one;
  }

  set(channel: string, pos: number): this {
    if (this.map) this.map.set(channel, pos);
    else if (this.one === undefined || this.one === channel) {
      this.one = channel;
      this.onePos = pos;
    } else {
      this.map = new Map([[this.one, this.onePos], [channel, pos]]);
      this.one = undefined;
    }
    return this;
  }

  delete(channel: string): boolean {
    if (this.map) return this.map.delete(channel);
    if (channel !== this.one) return false;
    this.one = undefined;
    return true;
  }

  /** The channels, in order (a copy: safe to change the positions while going through them). */
  keys(): string[] {
    if (this.map) return [...this.map.keys()];
    return this.one === undefined ? [] : [this.one];
  }

  values(): number[] {
    if (this.map) return [...this.map.values()];
    return this.one === undefined ? [] : [this.onePos];
  }

  entries(): [string, number][] {
    if (this.map) return [...this.map];
    return this.one === undefined ? [] : [[this.one, this.onePos]];
  }

  [Symbol.iterator](): IterableIterator<[string, number]> {
    return this.entries()[Symbol.iterator]();
  }
}
