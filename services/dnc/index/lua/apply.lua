#!lua flags=allow-cross-slot-keys
-- Apply a batch of list changes for one changelog partition, atomically with the
-- partition's offsets, so that what Redis holds and what it says it holds never differ.
-- On a Redis Cluster this runs once per node, with that node's contacts and its own meta,
-- additions stream and expiry index: atomic per node.
--
-- KEYS     meta hash, additions stream, the partition's expiry index
-- ARGV     prefix, epoch, partition, expected changes offset ("" = must be absent),
--          new changes offset, new commands offset ("" = unchanged), now_ms,
--          new-contacts blob (8 bytes per contact: uint32 bucket, int32 member; "" = none),
--          progress counters ("ref␟name␟increment" records separated by ␞; "" = none),
--          expiry index changes ("changelog key␟expiry ms" records separated by ␞; an
--          empty expiry removes the key; "" = none),
--          slot fingerprint of the node ("" = a single Redis),
--          then 4 per contact: bucket, member, field, value ("" = the contact left the list)
local SLOTS, FIRST, STRIDE, REFS = ARGV[11], 12, 4, ARGV[9]
-- #include writes.lua

local i = FIRST
while i <= #ARGV do
  local b, member, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local mkey = prefix .. ':m:{' .. b .. '}'
  local existed = redis.call('HEXISTS', mkey, field) == 1
  if value == '' then
    if existed then
      redis.call('HDEL', mkey, field)
      release(b, member)
    end
  else
    redis.call('HSET', mkey, field, value)
    if not existed then
      acquire(b, member)
    end
  end
  i = i + 4
end

expiry(ARGV[10])
redis.call('HSET', meta, 'chg:' .. part, ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', meta, 'cmd:' .. part, ARGV[6])
end
announce(ARGV[8], ARGV[7])
count_progress()
return 'OK'
