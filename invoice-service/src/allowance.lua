-- l402-edge: a metered token's count, changed atomically (core's Counter::apply).
-- KEYS[1] count key; ARGV: limit, take, release, expiry (unix seconds, 0: never), in order.
-- Returns {granted, left}.
local limit = tonumber(ARGV[1])
local take = tonumber(ARGV[2])
local release = tonumber(ARGV[3])
local expiry = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', KEYS[1]) or '0') - release
if used < 0 then used = 0 end
local free = limit - used
if free < 0 then free = 0 end
local granted = 0
if free > 0 and take > 0 then
  -- At most a quarter of what is left, at least one, never more than asked.
  granted = math.max(1, math.floor(free / 4))
  granted = math.min(granted, take, free)
end
used = used + granted
if expiry > 0 then
  redis.call('SET', KEYS[1], used, 'EXAT', expiry)
else
  redis.call('SET', KEYS[1], used)
end
return {granted, math.max(0, limit - used)}
