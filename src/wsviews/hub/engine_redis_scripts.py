"""What the Redis engine stores in Redis: its key names and its Lua scripts.

Every key starts with the layer prefix and carries the hash tag of the
channel's layer group (``G`` below, from ``group_for_channel``), the same tag
as the group's pub/sub topic, so each script touches one hash tag only and
runs on the shard that publishes to the group. Every key has a TTL.

==============================  ======  ==========================================  ====================
key                             type    what                                        TTL, reset by
==============================  ======  ==========================================  ====================
``P:hub:stream:{G}``            stream  publications: entry id ``<offset>-0``,      history_ttl:
                                        field ``p``: ``<n>:``, n bytes of packed    each publish
                                        info and tags, then the data
``P:hub:meta:{G}``              hash    ``e`` epoch, ``s`` top offset               history_meta_ttl:
                                                                                    each publish, read
``P:hub:result:{G}:KEY``        string  ``offset:epoch`` of an idempotent publish   idempotent_result_ttl
                                        (``""`` without history)
``P:hub:presence:{G}``          hash    client id -> ``<n>:<user>`` + packed info   presence_ttl:
``P:hub:presence:expiry:{G}``   zset    client id -> deadline (ms, Redis' clock)    each add, refresh
``P:hub:presence:users:{G}``    hash    user id -> number of its clients present
==============================  ======  ==========================================  ====================
"""

from __future__ import annotations

__all__ = ["HubSchema"]


class HubSchema:
    """Names of the hub's keys under one layer prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def stream(self, group: str) -> str:
        return f"{self.prefix}:hub:stream:{{{group}}}"

    def meta(self, group: str) -> str:
        return f"{self.prefix}:hub:meta:{{{group}}}"

    def result(self, group: str, key: str) -> str:
        return f"{self.prefix}:hub:result:{{{group}}}:{key}"

    def presence(self, group: str) -> list[str]:
        """Return the presence hash, expiry zset and users hash of ``group``."""
        return [
            f"{self.prefix}:hub:presence:{{{group}}}",
            f"{self.prefix}:hub:presence:expiry:{{{group}}}",
            f"{self.prefix}:hub:presence:users:{{{group}}}",
        ]

    def scan_pattern(self) -> str:
        """Return a SCAN pattern matching every hub key of this prefix."""
        prefix = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        return f"{prefix}:hub:*"


# Publish with history, run by the layer's group_send_scripted.
# KEYS stream, meta[, result]
# ARGV topic, envelope, entry, history_size, history_ttl_ms, meta_ttl_ms,
#      new_epoch[, result_ttl_ms]
# The offset and the append, the PUBLISH stamped with the position, and the
# idempotent result are one step: live delivery and history never disagree.
# Return "offset:epoch".
PUBLISH_WITH_HISTORY = """
if KEYS[3] then
  local done = redis.call('GET', KEYS[3])
  if done then return done end
end
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[7]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
-- %d: Lua's default number format turns large integers into 1e+15.
local offset = string.format('%d', redis.call('HINCRBY', KEYS[2], 's', 1))
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if offset == '1' then
  -- A new stream: entries left under the key belong to a lost epoch.
  redis.call('DEL', KEYS[1])
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], offset, 'p', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local position = offset .. ':' .. epoch
redis.call('PUBLISH', ARGV[1], '\\0' .. position .. ':' .. ARGV[2])
if KEYS[3] then redis.call('SET', KEYS[3], position, 'PX', ARGV[8]) end
return position
"""

# Publish without history, only when an idempotency key is given (run by
# group_send_scripted). KEYS result; ARGV topic, envelope, result_ttl_ms.
# Return 1 if published, 0 if the key was seen.
PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], '', 'NX', 'PX', ARGV[3]) then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# Publish without history (run by group_send_scripted). Return 1.
PUBLISH = """
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""

# The current epoch and top offset of a stream, made if it has none: a reader
# fixes the epoch that the next publications continue.
_POSITION = """
local function position(stream, meta, meta_ttl, new_epoch)
  local found = redis.call('HMGET', meta, 'e', 's')
  local epoch, top = found[1], found[2]
  if not epoch then
    epoch = new_epoch
    redis.call('HSET', meta, 'e', epoch)
    -- Entries left without their meta belong to a lost epoch.
    redis.call('DEL', stream)
  end
  redis.call('PEXPIRE', meta, meta_ttl)
  return epoch, top or '0'
end
-- Replies are flat, {top, epoch, id, entry, id, entry, ...}: a client parses
-- two values per publication instead of five nested ones.
local function reply(top, epoch, entries)
  local flat = {top, epoch}
  for i = 1, #entries do
    flat[#flat + 1] = entries[i][1]
    flat[#flat + 1] = entries[i][2][2]
  end
  return flat
end
"""

# KEYS stream, meta; ARGV direction ('f', 'r', or 'p': position only),
# bound (first id forward, last id reverse), count (-1: all), meta_ttl_ms, new_epoch.
# Return {top, epoch, id, entry, ...}.
HISTORY = _POSITION + """
local epoch, top = position(KEYS[1], KEYS[2], ARGV[4], ARGV[5])
if ARGV[1] == 'p' then return {top, epoch} end
local entries
local count = tonumber(ARGV[3])
if ARGV[1] == 'f' then
  if count < 0 then
    entries = redis.call('XRANGE', KEYS[1], ARGV[2], '+')
  else
    entries = redis.call('XRANGE', KEYS[1], ARGV[2], '+', 'COUNT', count)
  end
elseif count < 0 then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[2], '-')
else
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[2], '-', 'COUNT', count)
end
return reply(top, epoch, entries)
"""

# KEYS stream, meta; ARGV since_offset, since_epoch, limit (-1: none),
# meta_ttl_ms, new_epoch, first_id (since_offset + 1).
# Send the entries only when they can recover the client: same epoch, the gap
# within the limit, and its first offset still in the stream (entries are
# contiguous, so then all of them are). The caller decides from what it gets.
# Return {top, epoch, id, entry, ...}.
RECOVER = _POSITION + """
local epoch, top = position(KEYS[1], KEYS[2], ARGV[4], ARGV[5])
if ARGV[2] ~= '' and epoch ~= ARGV[2] then return {top, epoch} end
local missed = tonumber(top) - tonumber(ARGV[1])
if missed <= 0 then return {top, epoch} end
local limit = tonumber(ARGV[3])
if limit >= 0 and missed > limit then return {top, epoch} end
if #redis.call('XRANGE', KEYS[1], ARGV[6], ARGV[6]) == 0 then return {top, epoch} end
return reply(top, epoch, redis.call('XRANGE', KEYS[1], ARGV[6], '+'))
"""

# KEYS stream. Drop the publications; the meta (position) stays.
REMOVE_HISTORY = """
redis.call('DEL', KEYS[1])
return 1
"""

# Presence entries are "<n>:<user>" then the packed info, so Lua can read the
# user of an entry without decoding it. Deadlines use Redis' own clock, so the
# processes' clocks need not agree.
_PRESENCE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function user_of(entry)
  local colon = string.find(entry, ':', 1, true)
  local n = tonumber(string.sub(entry, 1, colon - 1))
  return string.sub(entry, colon + 1, colon + n)
end
local function count_user(user, delta)
  if redis.call('HINCRBY', KEYS[3], user, delta) <= 0 then redis.call('HDEL', KEYS[3], user) end
end
local function forget(client)
  local entry = redis.call('HGET', KEYS[1], client)
  if entry then
    redis.call('HDEL', KEYS[1], client)
    count_user(user_of(entry), -1)
  end
  redis.call('ZREM', KEYS[2], client)
end
-- Forget at most 1000 expired clients per call, so that one read after a
-- crowded process died does not block Redis; the rest go on later calls.
local function drop_expired(now)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
  for i = 1, #expired do forget(expired[i]) end
  return #expired
end
"""

# KEYS presence, expiry, users; ARGV ttl_ms, then client id, entry pairs.
# Add or refresh clients; the three keys live at least ttl_ms more.
UPSERT_PRESENCE = _PRESENCE + """
local now = now_ms()
drop_expired(now)
local deadline = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local client, entry = ARGV[i], ARGV[i + 1]
  local user = user_of(entry)
  local old = redis.call('HGET', KEYS[1], client)
  if not old then
    count_user(user, 1)
  elseif user_of(old) ~= user then
    count_user(user_of(old), -1)
    count_user(user, 1)
  end
  redis.call('HSET', KEYS[1], client, entry)
  redis.call('ZADD', KEYS[2], deadline, client)
end
-- Only ever extend the keys' TTL: a process with a shorter presence_ttl must
-- not make the keys expire before the entries of one with a longer one.
for i = 1, 3 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 1
"""

# KEYS presence, expiry, users; ARGV client id.
REMOVE_PRESENCE = _PRESENCE + """
forget(ARGV[1])
return 1
"""

# KEYS presence, expiry, users. Return a flat list client id, entry, ...
# of the live clients.
GET_PRESENCE = _PRESENCE + """
local now = now_ms()
if drop_expired(now) < 1000 then return redis.call('HGETALL', KEYS[1]) end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
local result = {}
-- HMGET in slices: unpack() of a long list overflows Lua's stack.
for first = 1, #live, 1000 do
  local last = math.min(first + 999, #live)
  local entries = redis.call('HMGET', KEYS[1], unpack(live, first, last))
  for i = first, last do
    local entry = entries[i - first + 1]
    if entry then
      result[#result + 1] = live[i]
      result[#result + 1] = entry
    end
  end
end
return result
"""

# KEYS presence, expiry, users. Return {clients, users}.
PRESENCE_STATS = _PRESENCE + """
local now = now_ms()
drop_expired(now)
return {redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'), redis.call('HLEN', KEYS[3])}
"""
