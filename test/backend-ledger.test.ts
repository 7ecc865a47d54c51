/**
 * The request ledger (docs/protocol.md#12-requests), the same contract on every store: a request is
 * claimed once, a retry finds its reply, a claim held by another "process" says so until it runs
 * out, ids that left the window are stale, and a client's entries never reach another client. Two
 * backends opened on one store are two processes.
 */
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import type { Claim, LedgerTerms, RequestLedger } from "../server/core/backend.js";
import { type Store, storeFactories } from "./helpers/backends.js";
import { storeKinds } from "./helpers/store-kinds.js";
import { pause } from "./helpers/wait.js";

/** The ledger's keys are one per client, so any number of shards; three spread them over the masters. */
const kinds = await storeKinds(3);

const TERMS: LedgerTerms = { claimMs: 60_000, keepMs: 60_000, window: 8 };
let seq = 0;
const client = () => `["ledger-${process.pid}-${++seq}",null,null]`;

describe.each(kinds)("%s ledger", (kind) => {
  let store: Store | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  async function two(): Promise<[RequestLedger, RequestLedger]> {
    store = storeFactories[kind]();
    const a = (await store.open()).backend.ledger!;
    const b = (await store.open()).backend.ledger!;
    expect(a).toBeDefined();
    return [a, b];
  }

  it("claims once; a retry through any process gets the reply; another client never does", async () => {
    const [a, b] = await two();
    const me = client();
    const other = client();
    expect(await a.claim(me, 1, TERMS)).toEqual({ state: "run" });
    expect(await b.claim(me, 1, TERMS)).toEqual({ state: "running" });
    await a.settle(me, 1, '{"id":1,"status":200,"data":"é😀"}', TERMS);
    expect(await b.claim(me, 1, TERMS)).toEqual({ state: "done", reply: '{"id":1,"status":200,"data":"é😀"}' });
    expect(await a.claim(me, 1, TERMS)).toEqual({ state: "done", reply: '{"id":1,"status":200,"data":"é😀"}' });
    // The same id of another identity is another request.
    expect(await b.claim(other, 1, TERMS)).toEqual({ state: "run" });
  });

  it("a claim that runs out (its process died) may be taken again; a released one at once", async () => {
    const [a, b] = await two();
    const me = client();
    expect(await a.claim(me, 1, { ...TERMS, claimMs: 150 })).toEqual({ state: "run" });
    expect(await b.claim(me, 1, TERMS)).toEqual({ state: "running" });
    await pause(300);
    expect(await b.claim(me, 1, TERMS)).toEqual({ state: "run" });
    expect(await a.claim(me, 2, TERMS)).toEqual({ state: "run" });
    await a.release(me, 2);
    expect(await b.claim(me, 2, TERMS)).toEqual({ state: "run" });
  });

  it("follows a model of the window under any order of claims and settles (fast-check)", async () => {
    const [a, b] = await two();
    // Each step: which process, claim or settle, which id (mostly near the top, sometimes far above).
    const step = fc.record({ p: fc.boolean(), settle: fc.boolean(), id: fc.oneof(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 2 ** 40 })) });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
        const me = client();
        const model = { max: 0, entries: new Map<number, string | null>() };
        for (const { p, settle, id } of steps) {
          const l = p ? a : b;
          if (settle) {
            const reply = `{"id":${id},"status":200,"data":${id}}`;
            await l.settle(me, id, reply, TERMS);
            if (model.entries.has(id) && id > model.max - TERMS.window) model.entries.set(id, reply);
            continue;
          }
          const got = await l.claim(me, id, TERMS);
          let want: Claim;
          const e = model.entries.get(id);
          if (e) want = { state: "done", reply: e };
          else if (e === null) want = { state: "running" };
          else if (id <= model.max - TERMS.window) want = { state: "stale" };
          else {
            if (id > model.max) {
              model.max = id;
              for (const k of [...model.entries.keys()]) if (k <= id - TERMS.window) model.entries.delete(k);
            }
            model.entries.set(id, null);
            want = { state: "run" };
          }
          expect(got).toEqual(want);
        }
      }),
      { numRuns: kind === "memory" ? 200 : 25 },
    );
  });
});
