import { BackendUnavailableError, type Claim, type LedgerTerms, type RequestLedger } from "../core/backend.js";

/**
 * One hash per client (`{prefix}req:{who}`): field `max` (the highest id claimed), and per request
 * `C<until>` while claimed or `R<reply>` once settled. Time is Redis's own (TIME), so processes with
 * clocks apart agree on when a claim runs out. Ids are dense per client, so each new id drops the one
 * leaving the window: a client's hash never holds more than `window` requests.
 */
const CLAIM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = tonumber(ARGV[1])
local window = tonumber(ARGV[3])
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  if string.sub(v, 1, 1) == 'R' then return {'done', string.sub(v, 2)} end
  if tonumber(string.sub(v, 2)) > now then return {'running'} end
else
  local max = tonumber(redis.call('HGET', KEYS[1], 'max') or '0')
  if id <= max - window then return {'stale'} end
  if id > max then
    redis.call('HSET', KEYS[1], 'max', ARGV[1])
    if id - max > window then
      for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
        if f ~= 'max' then redis.call('HDEL', KEYS[1], f) end
      end
    else
      for old = math.max(max - window + 1, 1), id - window do redis.call('HDEL', KEYS[1], tostring(old)) end
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], 'C' .. (now + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'run'}
`;

const SETTLE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'R' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

const RELEASE = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, 1) == 'C' then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

export type RunScript = <T>(script: string, keys: string[], args: string[]) => Promise<T>;

/** The request ledger of the Redis store (docs/protocol.md#12-requests): shared by every process on it. */
export class RedisLedger implements RequestLedger {
  constructor(
    private readonly run: RunScript,
    private readonly prefix: string,
  ) {}

  private key(who: string): string {
    return `${this.prefix}req:${who}`;
  }

  async claim(who: string, id: number, t: LedgerTerms): Promise<Claim> {
    const [state, reply] = await this.call<[string, string?]>(CLAIM, who, [String(id), String(t.claimMs), String(t.window), String(t.keepMs)]);
    return state === "done" ? { state, reply: reply! } : { state: state as "run" | "running" | "stale" };
  }

  async settle(who: string, id: number, reply: string, t: LedgerTerms): Promise<void> {
    await this.call(SETTLE, who, [String(id), reply, String(t.keepMs), String(t.window)]);
  }

  async release(who: string, id: number): Promise<void> {
    await this.call(RELEASE, who, [String(id)]);
  }

  private async call<T>(script: string, who: string, args: string[]): Promise<T> {
    try {
      return await this.run<T>(script, [this.key(who)], args);
    } catch (e) {
      throw new BackendUnavailableError("Redis", e, "request not run");
    }
  }
}
