#!lua flags=no-writes,allow-cross-slot-keys
-- Read the current entries of some contacts, with the index meta, in one round trip (on a
-- Redis Cluster: one per node, with that node's meta).
-- KEYS[1] meta; ARGV: prefix, then 2 per contact: bucket, field.
-- Returns {meta as a flat list, value-or-false per contact}.
local prefix = ARGV[1]
local values = {}
local n = 0
for i = 2, #ARGV, 2 do
  n = n + 1
  values[n] = redis.call('HGET', prefix .. ':m:{' .. ARGV[i] .. '}', ARGV[i + 1])
end
return {redis.call('HGETALL', KEYS[1]), values}
