/**
 * How a Redis Cluster deployment splits its channels (README, "Redis Cluster"): a fixed number of
 * shards, each one hash tag, so every key a publish touches is in one slot and one Lua script on one
 * node does it all. Pure functions: every process computes the same answers.
 */

const SLOTS = 16384;

/** CRC16/XMODEM, the function Redis Cluster maps keys to slots with. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

const utf8 = new TextEncoder();

/** The slot of a key whose hash tag is `tag` (`…{tag}…`). */
export function slotOfTag(tag: string): number {
  return crc16(utf8.encode(tag)) % SLOTS;
}

/**
 * One hash tag per shard, chosen so that shard i's slot lies in the middle of the i-th of `count`
 * equal slot ranges. `redis-cli --cluster create` gives masters equal contiguous ranges, so with as
 * many shards as masters (or a multiple) the shards land on different masters, not wherever CRC16
 * happens to put "0", "1", "2".
 */
export function shardTags(count: number): string[] {
  const width = SLOTS / count;
  return Array.from({ length: count }, (_, i) => {
    const lo = Math.floor(i * width + width / 4);
    const hi = Math.max(lo, Math.floor(i * width + (3 * width) / 4));
    for (let k = 0; ; k++) {
      const tag = `${i}.${k}`;
      const slot = slotOfTag(tag);
      if (slot >= lo && slot <= hi) return tag;
    }
  });
}

/** The shard of a channel: FNV-1a over its UTF-8 bytes. Changes with `count`, so `count` is fixed per deployment. */
export function shardOf(channel: string, count: number): number {
  if (count === 1) return 0;
  let h = 0x811c9dc5;
  for (const b of utf8.encode(channel)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h % count;
}

/**
 * `global_id` on the wire: shard s's own sequence number n becomes n·count + s. Unique across the
 * deployment and increasing within a shard (and so within a channel); with one shard it is n itself.
 */
export function wireGlobalId(local: number, shard: number, count: number): number {
  return local * count + shard;
}

/** The shard's own sequence number below which every wire id is ≤ `after`. */
export function localAfter(after: number, shard: number, count: number): number {
  return Math.max(0, Math.floor((after - shard) / count));
}

/**
 * The order of epochs: a longer one is newer, then by characters. Shards that disagree settle on the
 * newest (redis-epochs.ts; ADOPT in redis-scripts.ts compares the same way). Epochs made before this
 * order existed (8 random characters) are older than any made by `nextEpoch`.
 */
export function newer(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}

/**
 * A new epoch newer than `after`: base-36 milliseconds and two random characters (11 characters),
 * or, from a clock behind the one that made `after`, `after` with two more characters.
 */
export function nextEpoch(after = ""): string {
  const fresh = Date.now().toString(36).padStart(9, "0") + Math.floor(Math.random() * 36 * 36).toString(36).padStart(2, "0");
  if (newer(fresh, after) || after.length > 60) return fresh;
  return after + Math.floor(Math.random() * 36 ** 2).toString(36).padStart(2, "0");
}

export interface ClusterUrl {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  tls: boolean;
  prefix?: string;
  shards?: number;
}

/**
 * `redis+cluster://[user:password@]host:port,host:port/?prefix=…&shards=…` (`rediss+cluster://`
 * for TLS). The WHATWG URL parser refuses a list of hosts, so the authority is split by hand.
 */
export function parseClusterUrl(raw: string): ClusterUrl {
  const m = /^(rediss?)\+cluster:\/\/([^/?#]*)([^?#]*)(\?[^#]*)?$/.exec(raw);
  if (!m) throw new Error(`cometbus: not a Redis Cluster URL: ${raw} (redis+cluster://host:port,host:port)`);
  let authority = m[2];
  let username: string | undefined;
  let password: string | undefined;
  const at = authority.lastIndexOf("@");
  if (at >= 0) {
    const cred = authority.slice(0, at);
    authority = authority.slice(at + 1);
    const colon = cred.indexOf(":");
    const decode = (t: string) => {
      try {
        return decodeURIComponent(t);
      } catch {
        throw new Error(`cometbus: bad percent-encoding in the credentials of a Redis Cluster URL`);
      }
    };
    username = decode(colon >= 0 ? cred.slice(0, colon) : cred) || undefined;
    password = colon >= 0 ? decode(cred.slice(colon + 1)) : undefined;
  }
  const nodes = authority.split(",").filter(Boolean).map((hp) => {
    const colon = hp.lastIndexOf(":");
    const host = colon > 0 ? hp.slice(0, colon).replace(/^\[|\]$/g, "") : hp;
    const port = colon > 0 ? Number(hp.slice(colon + 1)) : 6379;
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`cometbus: bad node "${hp}" in ${raw}`);
    return { host, port };
  });
  if (!nodes.length) throw new Error(`cometbus: no nodes in ${raw}`);
  const q = new URLSearchParams(m[4] ?? "");
  const shardsText = q.get("shards");
  return {
    nodes,
    username,
    password,
    tls: m[1] === "rediss",
    prefix: q.get("prefix") ?? undefined,
    shards: shardsText === null ? undefined : checkShards(Number(shardsText)),
  };
}

export function checkShards(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`cometbus: shards must be an integer from 1 to 1024, got ${n}`);
  return n;
}
