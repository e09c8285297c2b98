-- One process's lease of one bot-wide limit (see bot/leases.py), in one atomic step.
-- KEYS[1]: the limit's hash, a field per process:
--   "<slots> <wanted> <expiry ms> <slots before> <needed now> <oldest waiting write's start ms> <held> <needed>"
-- ARGV: process, wanted, needed now, held, kept, limit, ttl ms, ms the oldest waiting write has waited,
--   needed (held, reserved and waiting writes)
-- Returns {slots granted, processes writing to the limit, 1 if another process needs more than it holds,
--   what the other processes need}.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local me, wanted, urgent = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local held, kept, limit, ttl_ms = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local waited_ms, needed = tonumber(ARGV[8]), tonumber(ARGV[9])
local since = 0
if waited_ms > 0 then since = now_ms - waited_ms end
local others, sharing, waiting, older, mine, others_needed = 0, 1, 0, 0, 0, 0
local wants = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local who = entries[i]
  local slots, want, expiry, before, need, their_since, their_held, their_needed =
    string.match(entries[i + 1], '^(%d+) (%d+) (%d+) (%d+) ?(%d*) ?(%d*) ?(%d*) ?(%d*)')
  slots, want, need = tonumber(slots), tonumber(want), tonumber(need) or tonumber(want)
  their_since, their_held = tonumber(their_since) or 0, tonumber(their_held) or 0
  if not slots or tonumber(expiry) <= now_ms then  -- lapsed, or not an entry this script wrote
    redis.call('HDEL', KEYS[1], who)
  elseif who == me then
    mine = slots
  else
    others = others + math.max(slots, tonumber(before), their_held)
    others_needed = others_needed + (tonumber(their_needed) or their_held)
    if want > 0 then sharing = sharing + 1 end
    if need > slots then
      waiting = 1
      if their_since > 0 and (since == 0 or their_since < since) then older = 1 end
    end
    table.insert(wants, {who, want})
  end
end
-- The slot a process keeps spare (so its next write needs no round trip) goes to a process
-- that needs it now; and a process whose write has waited longer is served first.
if waiting == 1 then wanted = math.min(wanted, math.max(urgent, kept)) end
if older == 1 then wanted = math.min(wanted, math.max(mine, held)) end
table.insert(wants, {me, wanted})
-- My fair part: the limit shared out as water fills vessels, smallest wants served whole first;
-- what can't be split evenly goes to the largest wants.
table.sort(wants, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
local remaining, fair = limit, wanted
for k = 1, #wants do
  local level = math.floor(remaining / (#wants - k + 1))
  if wants[k][2] > level then
    local leftover = remaining - level * (#wants - k + 1)
    for j = k, #wants do
      if wants[j][1] == me then
        fair = level
        if j > #wants - leftover then fair = level + 1 end
      end
    end
    break
  end
  remaining = remaining - wants[k][2]
end
-- Promised finals are kept while there is room. Writes already made count for the others until
-- they leave the window, but give no claim to more: a process over its fair part writes again
-- once enough of them have left it, so one that started first can't keep the limit.
-- No room while the others hold more than the limit (writes made on their last shares while Redis
-- was out of reach): a grant below zero would not read back as a number, and stall every process.
local room = math.max(0, limit - others)
local grant = math.max(math.min(wanted, fair, room), math.min(kept, room))
if grant == 0 and wanted == 0 and held == 0 then
  redis.call('HDEL', KEYS[1], me)
else
  local entry = {grant, wanted, now_ms + ttl_ms, mine, urgent, since, held, needed}
  redis.call('HSET', KEYS[1], me, table.concat(entry, ' '))
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
return {grant, sharing, waiting, others_needed}
