import { createServer } from "node:net";

/**
 * A loopback port nothing listens on right now, for a process that cannot be told `--port 0`
 * (nginx, a private redis-server) or must come back on the same port after a restart.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
