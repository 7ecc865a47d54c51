// Types for tally.js, so the TypeScript tests can use it as they would any module.
export type Verdict = "ok" | "lost" | "duplicate";

export declare class Tally {
  constructor(startId: number);
  lastId: number;
  received: number;
  lost: number;
  duplicates: number;
  resets: number;
  latencies: number[];
  add(data: unknown, messageId: number, receivedAt: number): Verdict;
  reset(): void;
  readonly last: number | null;
  percentiles(ps: number[]): (number | null)[];
}
