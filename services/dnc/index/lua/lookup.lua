#!lua flags=no-writes,allow-cross-slot-keys
-- The gate's check of a batch: one round trip, whatever the batch size (on a Redis
-- Cluster: one per node, each with that node's contacts, meta and additions stream).
-- KEYS[1] meta, KEYS[2] additions stream
-- ARGV: prefix; buckets (uint32 LE each); members (int32 LE each); field lengths
--       (uint16 LE each); fields concatenated; stream id to read contact additions
--       after ("" = none).
-- Returns {meta flat list, {i, value, i, value, ...} for contacts with entries (0-based i),
--          additions after the given id (XRANGE reply) or false}.
-- On a cluster node the bucket keys are not declared (allow-cross-slot-keys): a bucket the
-- node does not serve fails the whole call, which only reads, and the caller re-routes.
local prefix, buckets, members, lens, fields = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local meta = redis.call('HGETALL', KEYS[1])
local hits = {}
local n = #lens / 2
local pos = 1
for i = 0, n - 1 do
  local b = struct.unpack('<I4', buckets, i * 4 + 1)
  local m = struct.unpack('<i4', members, i * 4 + 1)
  local len = struct.unpack('<I2', lens, i * 2 + 1)
  if redis.call('SISMEMBER', prefix .. ':g:{' .. b .. '}', m) == 1 then
    local v = redis.call('HGET', prefix .. ':m:{' .. b .. '}', string.sub(fields, pos, pos + len - 1))
    if v then
      hits[#hits + 1] = i
      hits[#hits + 1] = v
    end
  end
  pos = pos + len
end
local adds = false
if ARGV[6] ~= '' then
  adds = redis.call('XRANGE', KEYS[2], '(' .. ARGV[6], '+')
end
return {meta, hits, adds}
