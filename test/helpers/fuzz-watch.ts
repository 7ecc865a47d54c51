import type { TestServer } from "./server.js";
import { waitFor } from "./wait.js";

/**
 * What a fuzz run of a server must leave behind, for every suite that fuzzes one: nothing reported
 * through `onError`, no unhandled rejection or exception, nothing written to console.error (the
 * server or the adapter under it), and no subscriber once the run's connections are gone.
 */
export class FuzzWatch {
  /** Give this to the server as its `onError`. */
  readonly onError = (e: unknown) => void this.errors.push(e);
  private readonly errors: unknown[] = [];
  private readonly rejections: unknown[] = [];
  private readonly logged: unknown[][] = [];
  private readonly consoleError = console.error;
  private readonly onRejection = (e: unknown) => void this.rejections.push(e);

  install(): void {
    process.on("unhandledRejection", this.onRejection);
    process.on("uncaughtException", this.onRejection);
    console.error = (...args: unknown[]) => {
      this.logged.push(args);
      this.consoleError(...args);
    };
  }

  uninstall(): void {
    process.off("unhandledRejection", this.onRejection);
    process.off("uncaughtException", this.onRejection);
    console.error = this.consoleError;
  }

  /** Before a run: what a failed run left is dropped (it was that run's failure, not the next one's). */
  reset(): void {
    this.errors.length = 0;
    this.rejections.length = 0;
    this.logged.length = 0;
  }

  /** After a run: the server still serves (`stillServes`), nothing is left subscribed, nothing went wrong. */
  async check(server: TestServer, stillServes: () => Promise<void>): Promise<void> {
    await stillServes();
    const live = () => Object.entries(server.bus.stats().subscribers as Record<string, number>).filter(([kind, n]) => kind !== "server" && n > 0);
    await waitFor(() => !live().length, () => `no subscriber left after every connection closed (have ${JSON.stringify(Object.fromEntries(live()))})`, 500);
    const show = (e: unknown) => String((e as Error)?.stack ?? e).slice(0, 400);
    const reported = this.errors.splice(0);
    const rejected = this.rejections.splice(0);
    const printed = this.logged.splice(0);
    if (reported.length) throw new Error(`onError was called ${reported.length}×: ${reported.map(show).join(" | ")}`);
    if (rejected.length) throw new Error(`unhandled rejection/exception: ${rejected.map(show).join(" | ")}`);
    if (printed.length) throw new Error(`console.error was called ${printed.length}×: ${printed.map((args) => args.map(show).join(" ")).join(" | ")}`);
  }
}
