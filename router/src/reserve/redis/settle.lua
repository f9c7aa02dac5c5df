-- triage settlement: a reservation becomes its real cost, unused tokens go back.
-- KEYS[1] the key's rate buckets (or any placeholder), then per budget window its hash and holds.
-- ARGV[1] the reservation's member "id:amount" ("" when none was taken), ARGV[2] its amount,
-- ARGV[3] the real cost, ARGV[4] tokens to refund, ARGV[5] tokens/minute (0: none),
-- then per window its TTL s.
-- Returns {settled_1, reserved_1, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local cost = tonumber(ARGV[3])
local refund = tonumber(ARGV[4])
local tpm = tonumber(ARGV[5])
local n = (#KEYS - 1) / 2
local out = {}
for i = 1, n do
  local h, z = KEYS[2 * i], KEYS[2 * i + 1]
  -- Already swept (past its deadline): its amount left `reserved` then.
  if member ~= '' and redis.call('ZREM', z, member) == 1 then
    redis.call('HINCRBY', h, 'reserved', '-' .. ARGV[2])
  end
  if cost > 0 then
    redis.call('HINCRBY', h, 'settled', ARGV[3])
    redis.call('EXPIRE', h, ARGV[5 + i])
  end
  local v = redis.call('HMGET', h, 'settled', 'reserved')
  out[#out + 1] = tonumber(v[1]) or 0
  out[#out + 1] = tonumber(v[2]) or 0
end
if refund > 0 and tpm > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 't_at')
  -- No bucket: it expired full, there is nothing to give back to.
  if b[1] then
    local l = tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * tpm / 60000 + refund
    if l > tpm then l = tpm end
    redis.call('HSET', KEYS[1], 't', tostring(l), 't_at', now)
  end
end
return out
