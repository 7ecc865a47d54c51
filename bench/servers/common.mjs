// Shared by every server under test: announce the port, answer memory questions from the runner.
export function ready(port) {
  process.stdout.write(`READY ${port}\n`);
}

process.on("message", (m) => {
  if (m === "mem") {
    globalThis.gc?.();
    globalThis.gc?.();
    const u = process.memoryUsage();
    process.send({ mem: { rss: u.rss, heapUsed: u.heapUsed, external: u.external } });
  }
});
process.on("disconnect", () => process.exit(0));

export function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on("data", (d) => parts.push(d));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}
// A clean exit on SIGINT lets `node --cpu-prof` write its profile.
process.on("SIGINT", () => process.exit(0));
