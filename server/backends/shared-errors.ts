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
