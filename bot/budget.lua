-- One step over buckets that share a hash tag (one Cluster slot), atomically. Per bucket, three
-- sorted sets: its writes (scored by when each counts from; one in flight by when it lapses),
-- its promised finals and its waiting writes (scored by when they lapse).
-- KEYS: each bucket's three sets, then the writes sets of the writes answered since the last step.
-- ARGV: op, id, extra, in_flight ms, promise ms, recheck ms, n (buckets), each bucket's limit and
-- window ms, then each answered write's id and how many ms before now it counts from.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, id, extra = ARGV[1], ARGV[2], ARGV[3]
local in_flight, promise_ms, recheck, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function each(f)
  for i = 1, n do
    f(i, KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i], tonumber(ARGV[6 + 2 * i]), tonumber(ARGV[7 + 2 * i]))
  end
end
-- The process's answered writes, after its n buckets: each counts from so many ms before now.
for k = 3 * n + 1, #KEYS do
  local at = 7 + 2 * n + 2 * (k - 3 * n)
  redis.call('ZADD', KEYS[k], 'XX', now - tonumber(ARGV[at]), ARGV[at - 1])
end
if op == 'settle' then
  return {0, 0, 0}
elseif op == 'release' then  -- a promise kept, or a write no longer waiting (or its slot no longer wanted)
  each(function(_, writes, finals, waiting)
    redis.call('ZREM', finals, id); redis.call('ZREM', waiting, id); redis.call('ZREM', writes, id)
  end)
  return {0, 0, 0}
end
local function take(writes, waiting, window, at)  -- a slot for the write, from `at` on: in flight until it lapses
  redis.call('ZADD', writes, at + in_flight, id)
  local keep = at - now + in_flight + window
  if redis.call('PTTL', writes) < keep then redis.call('PEXPIRE', writes, keep) end  -- never shortened
  redis.call('ZREM', waiting, id)
end
local wait, limiting, known = 0, 0, true
each(function(i, writes, finals, waiting, limit, window)
  redis.call('ZREMRANGEBYSCORE', writes, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', finals, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
  if extra ~= '' and redis.call('ZADD', finals, 'XX', 'CH', now + promise_ms, extra) == 1 then  -- a live reply's promise, renewed
    redis.call('PEXPIRE', finals, promise_ms)
  end
  local used, promised = redis.call('ZCARD', writes), redis.call('ZCARD', finals)
  local room = limit - used
  if op == 'spare' then
    room = room - promised - redis.call('ZCARD', waiting)
  elseif op == 'promise' then  -- on a limit of a second a final waits a second at most: promised ones alone count
    room = limit - promised
    if window > 1000 then room = room - used end
  end
  if room < 1 then
    -- The write needs the (1 - room)th oldest write out of the window. One that has landed
    -- frees a window after it; one in flight (scored by when it lapses) no sooner than a window
    -- after it was taken, and when is not known yet.
    local at = tonumber(redis.call('ZRANGE', writes, 0 - room, 0 - room, 'WITHSCORES')[2] or now + in_flight)
    local frees = at + window - now
    if at > now then frees, known = math.max(recheck, frees - in_flight), false end
    if frees > wait then wait, limiting = math.max(1, frees), i end
  end
end)
if wait > 0 and op == 'must' and known then  -- the slot is the write's: it goes then, without asking again
  each(function(_, writes, _, waiting, _, window) take(writes, waiting, window, now + wait) end)
  return {wait, limiting, 1}
elseif wait > 0 then
  if op == 'must' then
    each(function(_, _, _, waiting) redis.call('ZADD', waiting, now + promise_ms, id); redis.call('PEXPIRE', waiting, promise_ms) end)
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
