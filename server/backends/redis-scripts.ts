/**
 * The Lua scripts of the Redis backend. Each runs atomically, so ids, backlogs and the epoch are
 * always read and written together. Keys (after the prefix): `epoch`, `gid` (last global id),
 * `ids` (hash channel → last message id), `global` (zset by global id), `log:<channel>` (zset by
 * message id), `exp:<channel>` (zset: zero-padded message id by expiry).
 *
 * Expiry: a message's effective expiry is the smallest expiry of itself and every later message of
 * its channel ("a message expiring takes older ones with it", as in the memory backend). It never
 * decreases with the id, so expiring always drops a prefix, found by score in `exp:`. A publish
 * with a shorter age pulls the later-expiring tail down to its own expiry.
 */

/** Reads the epoch, creating a new one when the store lost it (FLUSHALL, a restart without persistence). */
const EPOCH = `
local function epoch_of(key, fresh)
  local e = redis.call('GET', key)
  if not e then
    redis.call('SET', key, fresh)
    e = fresh
  end
  return e
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function expire(log, exp, now)
  local dead = redis.call('ZREVRANGEBYSCORE', exp, now, '-inf', 'LIMIT', 0, 1)
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', log, '-inf', tonumber(dead[1]))
    redis.call('ZREMRANGEBYSCORE', exp, '-inf', now)
  end
end
`;

/**
 * KEYS: epoch, gid, ids, global, log, exp. ARGV: channel, meta, dataJson, maxBacklogSize,
 * maxBacklogAge (s), maxGlobalBacklogSize, fresh epoch, notify channel, notify command (PUBLISH, or
 * SPUBLISH on a cluster: the notification stays on the shard's node). Returns {epoch, gid, mid}.
 */
export const PUBLISH = `${EPOCH}
local epoch = epoch_of(KEYS[1], ARGV[7])
local gid = redis.call('INCR', KEYS[2])
local mid = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
local entry = gid .. '|' .. mid .. '|' .. ARGV[2] .. '\\n' .. ARGV[3]
redis.call('ZADD', KEYS[5], mid, entry)
redis.call('ZADD', KEYS[4], gid, entry)
local now = now_ms()
local expires = now + math.floor(tonumber(ARGV[5]) * 1000)
local later = redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. expires, '+inf')
for i = 1, #later do redis.call('ZADD', KEYS[6], expires, later[i]) end
redis.call('ZADD', KEYS[6], expires, string.format('%016d', mid))
local size = tonumber(ARGV[4])
if mid > size then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', mid - size)
  local excess = redis.call('ZCARD', KEYS[6]) - redis.call('ZCARD', KEYS[5])
  if excess > 0 then redis.call('ZREMRANGEBYRANK', KEYS[6], 0, excess - 1) end
end
expire(KEYS[5], KEYS[6], now)
redis.call('PEXPIREAT', KEYS[5], expires)
redis.call('PEXPIREAT', KEYS[6], expires)
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[6]) + 1))
redis.call(ARGV[9], ARGV[8], epoch .. ':' .. gid)
return {epoch, gid, mid}
`;

/** KEYS: log, exp. ARGV: after message id, most entries (-1: all). Returns the retained entries after it. */
export const BACKLOG = `${EPOCH}
expire(KEYS[1], KEYS[2], now_ms())
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
`;

/**
 * Empties a shard and starts `epoch` on it. KEYS: epoch, gid, ids, global; `prefix` is the shard's
 * key prefix (its channels' `log:`/`exp:` keys share the hash tag).
 */
const WIPE = `
local function wipe(prefix, epoch, notify, command)
  local channels = redis.call('HKEYS', KEYS[3])
  for i = 1, #channels do
    redis.call('DEL', prefix .. 'log:' .. channels[i], prefix .. 'exp:' .. channels[i])
  end
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  redis.call('SET', KEYS[1], epoch)
  redis.call(command, notify, epoch .. ':0')
end
`;

/**
 * KEYS: epoch, gid, ids, global. ARGV: after global id, page size, fresh epoch, checked global id,
 * SHA-1 of the entry expected there, the epoch it was seen in, key prefix, notify channel, notify
 * command, epoch to start if the check fails. Returns {epoch, last gid, entries}.
 *
 * The check: a process names the newest entry it knows this store holds (one it read or one whose
 * publish it acknowledged). If the store's last id is below it, or holds another entry under its
 * id, the store went back in time: a replica promoted before it had the newest writes, or a restore
 * from an older copy. Ids after that point would be handed out again for other messages, so the
 * shard starts a new epoch, which every process sees and tells its clients (a reset, never a hole).
 * An entry already trimmed from the global backlog cannot be checked; nothing is concluded then.
 */
export const GLOBAL = `${EPOCH}${WIPE}
local epoch = epoch_of(KEYS[1], ARGV[3])
local check = tonumber(ARGV[4])
if check > 0 and epoch == ARGV[6] then
  local lost = tonumber(redis.call('GET', KEYS[2]) or '0') < check
  if not lost then
    local at = redis.call('ZRANGEBYSCORE', KEYS[4], check, check)
    if #at > 0 then
      lost = redis.sha1hex(at[1]) ~= ARGV[5]
    else
      local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
      lost = #first > 0 and tonumber(first[2]) < check
    end
  end
  if lost then
    wipe(ARGV[7], ARGV[10], ARGV[8], ARGV[9])
    epoch = ARGV[10]
  end
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local items = redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[2]))
return {epoch, last, items}
`;

/** KEYS: epoch, gid, ids. ARGV: fresh epoch, channels… Returns {epoch, last gid, last ids…}. */
export const SNAPSHOT = `${EPOCH}
local epoch = epoch_of(KEYS[1], ARGV[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local ids = {}
if #ARGV > 1 then ids = redis.call('HMGET', KEYS[3], unpack(ARGV, 2)) end
for i = 1, #ids do ids[i] = tonumber(ids[i] or '0') end
return {epoch, last, ids}
`;

/** KEYS: epoch, gid, ids, global. ARGV: new epoch, key prefix, notify channel, notify command. */
export const RESET = `${WIPE}
wipe(ARGV[2], ARGV[1], ARGV[3], ARGV[4])
return ARGV[1]
`;

/**
 * A shard behind the others' epoch catches up by starting it (empty), unless it already holds that
 * epoch or a newer one (another process got there first; `newer` in redis-shards.ts). KEYS and ARGV as RESET; returns its epoch.
 */
export const ADOPT = `${WIPE}
local e = redis.call('GET', KEYS[1])
if e and (#e > #ARGV[1] or (#e == #ARGV[1] and e >= ARGV[1])) then return e end
wipe(ARGV[2], ARGV[1], ARGV[3], ARGV[4])
return ARGV[1]
`;
