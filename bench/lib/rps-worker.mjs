// Keeps `concurrency` keep-alive connections busy with one request each, back to back, for a while.
import http from "node:http";
import { Histogram } from "./histogram.mjs";
import { nowUs } from "./proc.mjs";

process.once("message", async ({ port, method, path, headers, body, concurrency, durationMs }) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const h = new Histogram();
  let requests = 0;
  let errors = 0;
  let bytes = 0;
  const end = performance.now() + durationMs;
  const cpu0 = process.cpuUsage();
  const one = () =>
    new Promise((resolve) => {
      const t = nowUs();
      const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent }, (res) => {
        res.on("data", (d) => (bytes += d.length));
        res.on("end", () => {
          if (res.statusCode === 200) {
            requests++;
            h.add(nowUs() - t);
          } else errors++;
          resolve();
        });
      });
      req.on("error", () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  process.send({ requests, errors, bytes, histogram: h.toJSON(), cpuS: (cpu.user + cpu.system) / 1e6 });
  process.exit(0);
});
