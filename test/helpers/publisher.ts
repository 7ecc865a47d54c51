/** HTTP publishers (`POST /publish`) that record what the server acknowledged and what it refused. */
import { request as httpRequest } from "node:http";
import { pause } from "./wait.js";

export interface Ack {
  channel: string;
  data: { p: number; i: number };
  global_id: number;
  message_id: number;
}

export interface Rejection {
  status: number;
  error: string;
}

export interface PublishRun {
  acks: Ack[];
  rejections: Rejection[];
}

/**
 * Publishes `count` messages over HTTP to the server at `url`, `concurrency` at a time, channels in
 * turn (publisher `p` starts at channel p, so several publishers spread over every channel at once);
 * `until` publishes until it says stop instead of `count`. Message i of publisher p is `{p, i}`.
 */
export async function publishAll(
  url: string,
  token: string,
  p: number,
  channels: string[],
  count: number,
  concurrency: number,
  opts: { until?: () => boolean; delayMs?: number; sink?: PublishRun } = {},
): Promise<PublishRun> {
  // A shared sink lets a test watch the acks of a run still going.
  const { acks, rejections } = opts.sink ?? { acks: [] as Ack[], rejections: [] as Rejection[] };
  let next = 0;
  const worker = async () => {
    for (;;) {
      if (opts.until ? opts.until() : next >= count) return;
      const i = next++;
      const channel = channels[(i + p) % channels.length];
      const data = { p, i };
      try {
        const res = await postJson(`${url}/publish`, token, JSON.stringify({ channel, data }));
        const body = JSON.parse(res.text) as { global_id: number; message_id: number; error?: string };
        if (res.status === 200) acks.push({ channel, data, global_id: body.global_id, message_id: body.message_id });
        else rejections.push({ status: res.status, error: body.error ?? "" });
      } catch (e) {
        const cause = (e as { cause?: unknown }).cause;
        rejections.push({ status: 0, error: `${e}${cause ? ` (${cause})` : ""}` });
      }
      if (opts.delayMs) await pause(opts.delayMs);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { acks, rejections };
}

/**
 * One POST on a connection of its own. Reusing keep-alive connections races the server closing them
 * when idle (5 s), and on a loaded machine an event loop late by a second loses that race: the
 * publish fails with "other side closed" though the server never saw it. A fresh connection per
 * publish cannot hit that, so every failure a test sees is the server's.
 */
function postJson(url: string, token: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: "POST",
        agent: false,
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}`, "Content-Length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
