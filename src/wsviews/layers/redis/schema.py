"""What the Redis layer stores in Redis: key and pub/sub channel names, and its Lua scripts.

Every key starts with the layer prefix and carries a Redis Cluster hash tag
(``{...}``) on the name it belongs to, every key has a TTL, and every script
touches the keys of one hash tag only.

=====================================  =========  ==================================
name                                   type       what
=====================================  =========  ==================================
``P:queue:{channel}``                  list       messages of a normal channel
``P:queue:{channel}:inflight:PROC``    list       the message PROC is popping
``P:members:{group}``                  zset       normal channels in the group
``P:backlog:{PROC}``                   list       messages parked for process PROC
``P:group:{group}``                    pub/sub    messages to the group
``P:inbox:{PROC}``                     pub/sub    messages to PROC's channels
``P:KIND:{name}``                      any        keys of extensions, from ``key()``
=====================================  =========  ==================================
"""

from __future__ import annotations

import re

# Drop the expired items at the head of a list. Items start with their
# deadline (14 digits of ms); the order of pushes is the order of deadlines.
_TRIM_EXPIRED = """
local function trim_expired(key, now)
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head then return end
    local deadline = tonumber(string.sub(head, 1, 14))
    if deadline == nil or deadline > now then return end
    redis.call('LPOP', key)
  end
end
"""

# KEYS[1] the channel's list; ARGV now_ms, ttl_ms, capacity, item.
# Return 1 if queued, 0 if the channel is full.
ENQUEUE = _TRIM_EXPIRED + """
trim_expired(KEYS[1], tonumber(ARGV[1]))
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] the owner's backlog; ARGV topic, payload, now_ms, ttl_ms, capacity, deadline.
# Publish to the owner's inbox; if nobody listens (the owner is reconnecting,
# or receives from another event loop later), park the message in the
# backlog, which the owner drains when it subscribes. Atomic, so a message is
# either seen by the subscription or in the backlog when the owner drains it.
# Return the number of receivers, 0 if parked, -1 if the backlog is full.
SEND_TO_PROCESS = _TRIM_EXPIRED + """
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2])
if receivers > 0 then return receivers end
trim_expired(KEYS[1], tonumber(ARGV[3]))
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[5]) then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[6] .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
"""

# KEYS[1] the group's normal-channel members; ARGV topic, payload, oldest_join.
# One PUBLISH reaches every process with members; normal channels (rare: no
# process owns them) are returned so the sender can queue the message for them.
GROUP_SEND = """
local receivers = redis.call('PUBLISH', ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {receivers} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(members, 1, receivers)
return members
"""

# KEYS[1] a backlog. Return its items and delete it.
DRAIN = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return items
"""

# KEYS[1] a normal channel's list, KEYS[2] this process's in-flight list for it;
# ARGV restore ('1' after a cancelled pop), ttl_ms.
# Put back what a cancelled pop left in flight, then reset the in-flight list
# to one empty marker so that it exists, and so carries a TTL, before BLMOVE.
PREPARE_POP = """
if ARGV[1] == '1' then
  local items = redis.call('LRANGE', KEYS[2], 0, -1)
  local restored = 0
  for i = #items, 1, -1 do
    if items[i] ~= '' then
      redis.call('LPUSH', KEYS[1], items[i])
      restored = restored + 1
    end
  end
  if restored > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[2], '')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 0
"""

_GLOB = re.compile(r"([*?\[\]\\])")
_KIND = re.compile(r"[A-Za-z0-9_.-]+")
#: Kinds of names the layer itself uses: key() refuses them.
RESERVED_KINDS = frozenset({"queue", "members", "backlog", "group", "inbox"})


def hash_tag(key: str) -> str | None:
    """Return what Redis Cluster hashes of ``key``: the text of its first non-empty ``{...}``."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1:end]


class Schema:
    """Names of the keys and pub/sub channels of one layer prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # Kinds named through key(): flush() deletes their keys too.
        self.extension_kinds: set[str] = set()

    def key(self, kind: str, name: str) -> str:
        """Return the name of an extension's key ``P:KIND:{name}``, hashed (and sharded) by ``name``."""
        if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind in RESERVED_KINDS:
            reserved = ", ".join(sorted(RESERVED_KINDS))
            raise ValueError(
                f"key kind {kind!r} must be letters, digits, '_', '-' or '.', and not one the "
                f"layer uses ({reserved}): name it after what it holds, e.g. 'history'"
            )
        if not isinstance(name, str) or not name or "{" in name or "}" in name:
            raise ValueError(f"key name {name!r} must be a non-empty str without braces")
        self.extension_kinds.add(kind)
        return f"{self.prefix}:{kind}:{{{name}}}"

    def queue(self, channel: str) -> str:
        return f"{self.prefix}:queue:{{{channel}}}"

    def inflight(self, channel: str, process: str) -> str:
        return f"{self.prefix}:queue:{{{channel}}}:inflight:{process}"

    def members(self, group: str) -> str:
        return f"{self.prefix}:members:{{{group}}}"

    def backlog(self, process: str) -> str:
        return f"{self.prefix}:backlog:{{{process}}}"

    def group_topic(self, group: str) -> bytes:
        return f"{self.prefix}:group:{{{group}}}".encode()

    def inbox_topic(self, process: str) -> bytes:
        return f"{self.prefix}:inbox:{{{process}}}".encode()

    def flush_patterns(self) -> list[str]:
        """Return SCAN patterns matching every key of this prefix, and no other key."""
        prefix = _GLOB.sub(r"\\\1", self.prefix)
        kinds = ["queue", "members", "backlog", *sorted(self.extension_kinds)]
        return [f"{prefix}:{kind}:*" for kind in kinds]
