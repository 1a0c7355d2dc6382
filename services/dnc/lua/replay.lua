-- Replay changelog records (the list writer's catch-up) for one partition, atomically with
-- the partition's offset. Unlike apply.lua, which is given each contact's new packed
-- entries, this is given one record per changelog record and merges it into the contact's
-- current entries here, so a catch-up needs no read round trip and no unpacking in Python.
--
-- KEYS[1]  meta hash
-- ARGV     prefix, epoch, partition, expected changes offset ("" = must be absent),
--          new changes offset, now_ms, progress counters (as apply.lua), expiry index
--          changes (as apply.lua), then 5 per changelog record, in changelog order: bucket, member, field,
--          slot ("channel␟sender␟", which identifies the entry within the contact),
--          packed entry ("" = a tombstone: the entry left the list)
local meta = KEYS[1]
local prefix, epoch, part = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', meta, 'epoch') ~= epoch then
  return redis.error_reply('DIVERGED epoch')
end
local current = redis.call('HGET', meta, 'chg:' .. part)
if (current or '') ~= ARGV[4] then
  return redis.error_reply('DIVERGED offset ' .. tostring(current) .. ' expected ' .. ARGV[4])
end

-- The partition's expiry index: changelog keys of entries that expire, by expiry time
-- (the list writer's sweeper reads it). Maintained here, with the data, so it survives
-- restarts and is rebuilt with the index.
local function expiry(blob)
  if blob == '' then
    return
  end
  local xkey = prefix .. ':x:' .. part
  for member, score in string.gmatch(blob, '([^\30\31]+)\31([^\30\31]*)') do
    if score == '' then
      redis.call('ZREM', xkey, member)
    else
      redis.call('ZADD', xkey, score, member)
    end
  end
end

local function acquire(b, member)
  if redis.call('SADD', prefix .. ':g:{' .. b .. '}', member) == 0 then
    redis.call('HINCRBY', prefix .. ':gc:{' .. b .. '}', member, 1)
  end
end

local function release(b, member)
  local gc = prefix .. ':gc:{' .. b .. '}'
  local extra = tonumber(redis.call('HGET', gc, member) or '0')
  if extra > 1 then
    redis.call('HINCRBY', gc, member, -1)
  elseif extra == 1 then
    redis.call('HDEL', gc, member)
  else
    redis.call('SREM', prefix .. ':g:{' .. b .. '}', member)
  end
end

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
local i = 9
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
if n_new > 0 then
  -- Contacts that gained their first entry, for the gates' filters (see apply.lua).
  local floor = tonumber(ARGV[6]) - 600000
  redis.call('XADD', prefix .. ':adds', 'MINID', floor, '*', 'm', table.concat(new_contacts))
  redis.call('HSET', meta, 'adds_floor', floor)
end
if ARGV[7] ~= '' then
  for ref, name, incr in string.gmatch(ARGV[7], '([^\31\30]+)\31([^\31\30]+)\31([^\31\30]+)') do
    local key = prefix .. ':ref:' .. ref
    redis.call('HINCRBY', key, name, incr)
    redis.call('EXPIRE', key, 604800)
  end
end
return 'OK'
