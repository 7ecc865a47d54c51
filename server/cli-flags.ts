import type { Limits } from "../src/limits.js";
import type { MessageBusOptions } from "./options.js";

/** A numeric flag of `cometbus serve`: where its value goes among the options, and what it says in --help. */
interface NumberFlag {
  flag: string;
  /** What the value is (N, MS, S). */
  arg: string;
  help: string;
  option?: keyof MessageBusOptions;
  limit?: keyof Limits;
  /** Zero is not a value (a rate). */
  positive?: boolean;
}

/** Every option that makes sense for a standalone server and takes a number (README, "CLI"). */
export const NUMBER_FLAGS: NumberFlag[] = [
  { flag: "drain-window", option: "drainWindow", arg: "MS", help: "on SIGTERM, spread telling connections to move over this long (default 10000)" },
  { flag: "drain-delay", option: "drainDelay", arg: "MS", help: "on SIGTERM, fail the health check this long first, serving as usual (default 0)" },
  { flag: "reconnect-rate", option: "reconnectRate", positive: true, arg: "N", help: "reconnections per second this process's clients spread to if it dies (default 500)" },
  { flag: "max-connections", option: "maxConnections", arg: "N", help: "refuse new connections past N (503 / close 1013), serving those held" },
  { flag: "max-lag", option: "maxEventLoopLagMs", arg: "MS", help: "refuse new connections while the event loop lags more than MS" },
  { flag: "flush-delay", option: "flushDelay", arg: "MS", help: "the most a busy process holds a flush to batch writes (default 10; 0 never)" },
  { flag: "shed-retry-after", option: "shedRetryAfterMs", arg: "MS", help: "what a refused connection is told to wait (default 5000)" },
  { flag: "long-poll-timeout", option: "longPollTimeout", arg: "MS", help: "how long a long-poll is held (default 25000)" },
  { flag: "heartbeat", option: "heartbeatInterval", arg: "MS", help: "SSE / WebSocket heartbeat interval (default 25000)" },
  { flag: "max-backlog-size", option: "maxBacklogSize", positive: true, arg: "N", help: "messages kept per channel (default 1000)" },
  { flag: "max-backlog-age", option: "maxBacklogAge", positive: true, arg: "S", help: "seconds a message is kept (default 604800, 7 days)" },
  { flag: "max-global-backlog-size", option: "maxGlobalBacklogSize", positive: true, arg: "N", help: "messages kept in the global backlog (default 2000)" },
  { flag: "max-body-bytes", limit: "maxBodyBytes", arg: "N", help: "largest request body (default 65536)" },
  { flag: "max-channels", limit: "maxChannels", arg: "N", help: "channels in one subscription (default 100)" },
  { flag: "max-message-bytes", limit: "maxMessageBytes", arg: "N", help: "largest published message, JSON (default 262144)" },
  { flag: "max-frame-bytes", limit: "maxFrameBytes", arg: "N", help: "largest WebSocket frame from a client (default 65536)" },
  { flag: "max-buffered-bytes", limit: "maxBufferedBytes", arg: "N", help: "bytes a connection may leave untaken before it is cut (default 1048576)" },
  { flag: "max-stall", limit: "maxStallMs", arg: "MS", help: "a catch-up page not taken within MS cuts the connection (default 30000)" },
  { flag: "max-queued-requests", limit: "maxQueuedRequests", arg: "N", help: "requests pipelined behind an unfinished response (default 16)" },
  { flag: "max-channel-bytes", limit: "maxChannelBytes", arg: "N", help: "longest channel name in bytes (default 256)" },
];

function count(name: string, v: string, positive = false): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (positive && n === 0) || v.trim() === "") throw new Error(`bad --${name}: ${v}`);
  return n;
}

/** The bus options the numeric flags given say, limits included. */
export function numberOptions(values: Record<string, unknown>): MessageBusOptions {
  const options: Record<string, unknown> = {};
  const limits: Record<string, number> = {};
  for (const f of NUMBER_FLAGS) {
    const v = values[f.flag];
    if (typeof v !== "string") continue;
    const n = count(f.flag, v, f.positive);
    if (f.limit) limits[f.limit] = n;
    else options[f.option!] = n;
  }
  return { ...options, ...(Object.keys(limits).length ? { limits } : {}) };
}

/** `--allowed-origins`: `*` for any, or a comma-separated list of origins (`https://app.example`). */
export function allowedOrigins(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const list = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const o of list) {
    if (o !== "*" && !/^https?:\/\/[^/\s]+$/.test(o)) throw new Error(`bad --allowed-origins: ${o} (an origin is scheme://host[:port], or * for any)`);
  }
  if (!list.length) throw new Error("bad --allowed-origins: empty");
  return list;
}

/** The numeric flags' lines of --help, aligned with the others. */
export function numberFlagsUsage(): string {
  return NUMBER_FLAGS.map((f) => {
    const left = `  --${f.flag} ${f.arg}`;
    return `${left.length < 24 ? left.padEnd(24) : left + " "}${f.help}`;
  }).join("\n");
}
