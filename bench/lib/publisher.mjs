// Publishes stamped messages at a fixed rate or as fast as the server takes them.
import { Pipeline } from "./pipeline.mjs";
import { nowUs } from "./proc.mjs";
import { sleep } from "./wait.mjs";
import { stamp } from "../targets.mjs";

/**
 * `rate`: messages/s, or 0 for as fast as possible with `window` requests in flight and the
 * subscribers at most `maxLag` messages behind on average (`lagging()` says how far they are).
 */
export async function publish({ port, target, rate, durationMs, window = 16, maxLag = 300, lagging }) {
  const pipe = new Pipeline(port);
  await pipe.ready;
  let sent = 0;
  let failed = 0;
  let seq = 0;
  const firstUs = nowUs();
  const pending = new Set();
  const one = () => {
    const s = ++seq;
    const { path, headers, body } = target.publish(stamp(s, nowUs()));
    const p = pipe.post(path, headers, body).then(
      (status) => (status >= 200 && status < 300 ? sent++ : failed++),
      () => failed++,
    );
    pending.add(p);
    p.finally(() => pending.delete(p));
  };
  const t0 = performance.now();
  if (rate > 0) {
    const total = Math.round((rate * durationMs) / 1000);
    while (seq < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (seq < due) one();
      await sleep(Math.max(1, Math.min(10, 1000 / rate / 2)));
    }
  } else {
    while (performance.now() - t0 < durationMs) {
      if (pipe.inFlight >= window) await Promise.race(pending);
      else if (lagging(seq) > maxLag) await sleep(1);
      else one();
    }
  }
  await Promise.all(pending);
  pipe.close();
  return { sent, failed, firstUs, publishMs: performance.now() - t0 };
}
