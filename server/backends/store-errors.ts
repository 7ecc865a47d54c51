import { BackendUnavailableError } from "../core/backend.js";

/**
 * One line when a store goes away and one when it is back, instead of one per failed reconnect
 * attempt. `null` means "connected again".
 */
export function throttledReporter(kind: string): (e: unknown) => void {
  let down = false;
  return (e) => {
    if (e === null) {
      if (down) console.error(`cometbus: ${kind} connection restored`);
      down = false;
      return;
    }
    if (down) return;
    down = true;
    console.error(`cometbus: ${kind} unavailable: ${e instanceof Error ? e.message : String(e)}`);
  };
}

/** Runs a read; a store that is down answers 503 "try again" instead of an internal error. */
export async function reading<T>(kind: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    throw new BackendUnavailableError(kind, e, "try again later");
  }
}
