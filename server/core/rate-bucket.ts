/**
 * A token bucket: `perSecond` on average, bursts up to twice that. Refilled lazily from the clock,
 * so an idle bucket costs nothing.
 */
export class RateBucket {
  private tokens: number;
  private at = Date.now();

  constructor(private readonly perSecond: number) {
    this.tokens = 2 * perSecond;
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(2 * this.perSecond, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    this.at = now;
  }

  /** Takes a token, owing it if none is left: the ms until it is due (0: at once). */
  reserve(): number {
    this.refill();
    this.tokens--;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.perSecond);
  }

  /** Full again: nothing to remember about this client. */
  get full(): boolean {
    return this.tokens + ((Date.now() - this.at) * this.perSecond) / 1000 >= 2 * this.perSecond;
  }
}
