/**
 * Waiting for something that happens in another process, socket or timer. The timeout is a safety
 * net that turns a hang into a failure naming what never happened, never a timing assertion.
 */

export const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Resolves once `cond()` holds (sync or async), checking every `everyMs`; otherwise throws
 * `timed out waiting for <what>`. `what` may be a function, so the message shows the state at the
 * moment of giving up rather than at the start.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string | (() => string),
  ms = 10_000,
  everyMs = 10,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await pause(everyMs);
  }
}
