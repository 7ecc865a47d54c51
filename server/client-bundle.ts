import { readFileSync } from "node:fs";

/** The browser bundle (`GET {base}/client.js`), if it has been built (`npm run build`). */
export function clientBundle(): string | null {
  // From dist/server/ the bundle is in dist/client/; from the TypeScript sources (tests), in dist/ too.
  for (const path of ["../client/cometbus.iife.js", "../dist/client/cometbus.iife.js"]) {
    try {
      return readFileSync(new URL(path, import.meta.url), "utf8");
    } catch {
      // try the next place
    }
  }
  return null;
}
