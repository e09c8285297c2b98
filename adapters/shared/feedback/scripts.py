"""The Lua scripts of the votes and knowledge gaps (adapters.shared.feedback.records): each runs on the keys of one
answer or of one scope's gap list, which share a hash tag."""

# Lua: drop the entries of a scope's gap list (KEYS[1] the sorted set, KEYS[2] the hash) older than `cutoff`, in
# slices small enough for unpack().
PRUNE = """
local function prune(cutoff)
  while true do
    local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'LIMIT', 0, 500)
    if #old == 0 then return end
    redis.call('ZREM', KEYS[1], unpack(old))
    redis.call('HDEL', KEYS[2], unpack(old))
  end
end
"""

# Record an answer (its counts and votes are kept if it was recorded before): ARGV info, seconds to keep.
RECORD = """
redis.call('HSET', KEYS[1], 'info', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

# A person's vote (ARGV: person, "up" | "down") on a recorded answer → {status, ups, downs}; status -1 missing,
# 0 unchanged, 1 new, 2 changed. The votes expire with the answer.
VOTE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0, 0} end
local old = redis.call('HGET', KEYS[2], ARGV[1])
local status = 0
if old ~= ARGV[2] then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  if old then
    redis.call('HINCRBY', KEYS[1], old, -1)
    status = 2
  else
    status = 1
  end
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
local counts = redis.call('HMGET', KEYS[1], 'up', 'down')
return {status, tonumber(counts[1] or 0), tonumber(counts[2] or 0)}
"""

# Take back a person's vote (ARGV: person) and what it added to the counts → 1 if there was one.
UNVOTE = """
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], old, -1) end
return 1
"""

# Add a gap entry unless it is there already (a retried write keeps the reason given since). ARGV: id, entry,
# when, cutoff, seconds to keep the list → 1 if added. An entry older than the cutoff is not kept.
ADD_GAP = (
    PRUNE
    + """
prune(ARGV[4])
if tonumber(ARGV[3]) < tonumber(ARGV[4]) then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""
)

# Remove gap entries (ARGV: their ids) → how many there were.
REMOVE_GAPS = """
local removed = 0
for i = 1, #ARGV do
  removed = removed + redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('ZREM', KEYS[1], ARGV[i])
end
return removed
"""

# Set an entry's reason (ARGV: id, reason) → 1 if the entry is there.
SET_REASON = """
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
local entry = cjson.decode(raw)
entry['reason'] = ARGV[2]
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(entry))
return 1
"""

# The scope's entries of the last days (ARGV: cutoff), the older ones pruned first.
READ_GAPS = (
    PRUNE
    + """
prune(ARGV[1])
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1])
if #ids == 0 then return {} end
local entries = {}
for i = 1, #ids, 500 do
  local slice = redis.call('HMGET', KEYS[2], unpack(ids, i, math.min(i + 499, #ids)))
  for j = 1, #slice do entries[#entries + 1] = slice[j] end
end
return entries
"""
)

# Delete a scope's list (ARGV: cutoff) → how many of its entries were recent enough to be listed.
DROP_GAPS = """
local listed = redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')
redis.call('DEL', KEYS[1], KEYS[2])
return listed
"""
