#!lua flags=allow-cross-slot-keys
-- Replay changelog records (the list writer's catch-up) for one partition, atomically with
-- the partition's offset. Unlike apply.lua, which is given each contact's new packed
-- entries, this is given one record per changelog record and merges it into the contact's
-- current entries here, so a catch-up needs no read round trip and no unpacking in Python.
-- On a Redis Cluster this runs once per node, with that node's records (see apply.lua).
--
-- KEYS     meta hash, additions stream, the partition's expiry index
-- ARGV     prefix, epoch, partition, expected changes offset ("" = must be absent),
--          new changes offset, now_ms, progress counters (as apply.lua), expiry index
--          changes (as apply.lua), slot fingerprint of the node ("" = a single Redis),
--          then 5 per changelog record, in changelog order: bucket, member, field,
--          slot ("channel␟sender␟", which identifies the entry within the contact),
--          packed entry ("" = a tombstone: the entry left the list)
local SLOTS, FIRST, STRIDE, REFS = ARGV[9], 10, 5, ARGV[7]
-- #include writes.lua

-- The contact's records with the one of `slot` replaced by `rec` (in place), dropped
-- (rec == ''), or appended: the order pack_entries() would give.
local function merge(cur, slot, rec)
  local out, n, found = {}, 0, false
  local len = #slot
  for r in string.gmatch(cur, '[^\30]+') do
    if string.sub(r, 1, len) == slot then
      found = true
      if rec ~= '' then
        n = n + 1
        out[n] = rec
      end
    else
      n = n + 1
      out[n] = r
    end
  end
  if not found and rec ~= '' then
    n = n + 1
    out[n] = rec
  end
  return table.concat(out, '\30')
end

local new_contacts, n_new = {}, 0
local mkeys = {}
local i = FIRST
while i <= #ARGV do
  local b, member, field, slot, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local mkey = mkeys[b]
  if not mkey then
    mkey = prefix .. ':m:{' .. b .. '}'
    mkeys[b] = mkey
  end
  -- The contact is usually new (a rebuild replays each contact once): one write then.
  if rec ~= '' and redis.call('HSETNX', mkey, field, rec) == 1 then
    acquire(b, member)
    n_new = n_new + 1
    new_contacts[n_new] = struct.pack('<I4i4', tonumber(b), tonumber(member))
  else
    local cur = redis.call('HGET', mkey, field)
    if cur then
      local value = merge(cur, slot, rec)
      if value == '' then
        redis.call('HDEL', mkey, field)
        release(b, member)
      elseif value ~= cur then
        redis.call('HSET', mkey, field, value)
      end
    end
  end
  i = i + 5
end

expiry(ARGV[8])
redis.call('HSET', meta, 'chg:' .. part, ARGV[5])
announce(table.concat(new_contacts), ARGV[6])
count_progress()
return 'OK'
