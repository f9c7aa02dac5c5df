-- triage admission: rate limits, then every budget window, in one atomic step.
-- KEYS[1] reservation id counter, KEYS[2] the key's rate buckets (a hash: r, r_at, t, t_at),
-- then per budget window its hash (settled, reserved) and its holds (a sorted set of
-- "id:amount" by deadline in ms).
-- ARGV[1] amount (micro-dollars), ARGV[2] hold ms (the request's deadline from now),
-- ARGV[3] requests/minute (0: none), ARGV[4] tokens/minute (0: none), ARGV[5] tokens asked,
-- then per window: limit, seed (settled spend to start a missing window at; -1: none), TTL s.
-- Returns {1, id, settled_1, reserved_1, ...} (id 0: nothing reserved),
-- {2, window index, settled, reserved} when a budget has no room (rate limits were charged),
-- {3, 1|2 (requests|tokens), retry ms (-1: never), limit, asked} when a rate limit has no room.
local function int(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local amount = tonumber(ARGV[1])
local hold_ms = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
local n = (#KEYS - 2) / 2

local function refill(level, at, cap)
  if not level then return cap end
  local l = tonumber(level) + math.max(0, now - tonumber(at)) * cap / 60000
  if l > cap then l = cap end
  return l
end

if rpm > 0 or tpm > 0 then
  local b = redis.call('HMGET', KEYS[2], 'r', 'r_at', 't', 't_at')
  local r_level, t_level
  if rpm > 0 then
    r_level = refill(b[1], b[2], rpm)
    if r_level < 1 then
      return {3, 1, math.ceil((1 - r_level) * 60000 / rpm), rpm, 1}
    end
  end
  if tpm > 0 then
    if tokens > tpm then return {3, 2, -1, tpm, tokens} end
    t_level = refill(b[3], b[4], tpm)
    if t_level < tokens then
      return {3, 2, math.ceil((tokens - t_level) * 60000 / tpm), tpm, tokens}
    end
  end
  if rpm > 0 then redis.call('HSET', KEYS[2], 'r', tostring(r_level - 1), 'r_at', now) end
  if tpm > 0 then redis.call('HSET', KEYS[2], 't', tostring(t_level - tokens), 't_at', now) end
  -- A bucket left alone for a minute is full again: nothing is lost when it expires.
  redis.call('PEXPIRE', KEYS[2], 120000)
end

local settled, reserved = {}, {}
for i = 1, n do
  local h, z = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
  local limit = tonumber(ARGV[3 + 3 * i])
  local seed = tonumber(ARGV[4 + 3 * i])
  if seed >= 0 and redis.call('EXISTS', h) == 0 then
    redis.call('HSET', h, 'settled', int(seed), 'reserved', 0)
  end
  -- Reservations whose request is past its deadline free themselves here.
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #expired > 0 then
    local freed = 0
    for _, m in ipairs(expired) do freed = freed + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    redis.call('HINCRBY', h, 'reserved', int(-freed))
  end
  local v = redis.call('HMGET', h, 'settled', 'reserved')
  settled[i] = tonumber(v[1]) or 0
  reserved[i] = tonumber(v[2]) or 0
  if amount > 0 and settled[i] + reserved[i] + amount > limit then
    return {2, i, settled[i], reserved[i]}
  end
end

local id = 0
if amount > 0 and n > 0 then
  id = redis.call('INCR', KEYS[1])
  local member = id .. ':' .. int(amount)
  for i = 1, n do
    local h, z = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
    local ttl = ARGV[5 + 3 * i]
    redis.call('HINCRBY', h, 'reserved', int(amount))
    redis.call('ZADD', z, now + hold_ms, member)
    redis.call('EXPIRE', h, ttl)
    redis.call('EXPIRE', z, ttl)
    reserved[i] = reserved[i] + amount
  end
end
local out = {1, id}
for i = 1, n do
  out[#out + 1] = settled[i]
  out[#out + 1] = reserved[i]
end
return out
