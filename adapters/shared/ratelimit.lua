-- One rate-limit step over buckets that share a hash tag (one Cluster slot), atomically.
-- Per bucket, three sorted sets: its writes (scored by when each counts from; one in flight by
-- when it lapses), the finals promised to live replies and the writes waiting for a slot (both
-- scored by when they lapse).
-- KEYS: each bucket's three sets.
-- ARGV: op, id, extra (a live reply's promise, renewed), in_flight ms, promise ms, recheck ms,
-- n (buckets), then each bucket's limit and window ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, id, extra = ARGV[1], ARGV[2], ARGV[3]
local in_flight, promise_ms, recheck, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function each(f)
  for i = 1, n do
    f(i, KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], tonumber(ARGV[6 + 2 * i]), tonumber(ARGV[7 + 2 * i]))
  end
end
if op == 'landed' then  -- the platform answered: the write counts from now
  each(function(_, writes) redis.call('ZADD', writes, 'XX', now, id) end)
  return {0, 0, 0}
elseif op == 'release' then  -- a promise kept, or a write no longer waiting (or no longer wanted)
  each(function(_, writes, finals, waiting)
    redis.call('ZREM', finals, id); redis.call('ZREM', waiting, id); redis.call('ZREM', writes, id)
  end)
  return {0, 0, 0}
end
local function take(writes, waiting, window, at)  -- a slot from `at` on, in flight until it lapses
  redis.call('ZADD', writes, at + in_flight, id)
  local keep = at - now + in_flight + window
  if redis.call('PTTL', writes) < keep then redis.call('PEXPIRE', writes, keep) end
  redis.call('ZREM', waiting, id)
end
local wait, limiting, known = 0, 0, true
each(function(i, writes, finals, waiting, limit, window)
  redis.call('ZREMRANGEBYSCORE', writes, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', finals, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
  if extra ~= '' and redis.call('ZADD', finals, 'XX', 'CH', now + promise_ms, extra) == 1 then
    redis.call('PEXPIRE', finals, promise_ms)
  end
  local used, promised = redis.call('ZCARD', writes), redis.call('ZCARD', finals)
  local room = limit - used
  if op == 'spare' then
    room = room - promised - redis.call('ZCARD', waiting)
  elseif op == 'promise' then  -- on a window of a second a final waits a second at most: promises alone count
    room = limit - promised
    if window > 1000 then room = room - used end
  end
  if room < 1 then
    -- The write needs the (1 - room)th oldest write out of the window. One that has landed frees
    -- a window after it; one in flight no sooner than a window after it was taken.
    local at = tonumber(redis.call('ZRANGE', writes, 0 - room, 0 - room, 'WITHSCORES')[2] or now + in_flight)
    local frees = at + window - now
    if at > now then frees, known = math.max(recheck, frees - in_flight), false end
    if frees > wait then wait, limiting = math.max(1, frees), i end
  end
end)
if wait > 0 and op == 'must' and known then  -- the slot is the write's: it goes then, unasked
  each(function(_, writes, _, waiting, _, window) take(writes, waiting, window, now + wait) end)
  return {wait, limiting, 1}
elseif wait > 0 then
  if op == 'must' then
    each(function(_, _, _, waiting)
      redis.call('ZADD', waiting, now + promise_ms, id); redis.call('PEXPIRE', waiting, promise_ms)
    end)
  end
  return {wait, limiting, 0}
end
each(function(_, writes, finals, waiting, _, window)
  if op == 'promise' then
    redis.call('ZADD', finals, now + promise_ms, id)
    redis.call('PEXPIRE', finals, promise_ms)
  else
    take(writes, waiting, window, now)
  end
end)
return {0, 0, 0}
