-- Apply a batch of list changes for one changelog partition, atomically with the
-- partition's offsets, so that what Redis holds and what it says it holds never differ.
--
-- KEYS[1]  meta hash
-- ARGV     prefix, epoch, partition, expected changes offset ("" = must be absent),
--          new changes offset, new commands offset ("" = unchanged), now_ms,
--          new-contacts blob (8 bytes per contact: uint32 bucket, int32 member; "" = none),
--          progress counters ("ref␟name␟increment" records separated by ␞; "" = none),
--          expiry index changes ("changelog key␟expiry ms" records separated by ␞; an
--          empty expiry removes the key; "" = none),
--          then 4 per contact: bucket, member, field, value ("" = the contact left the list)
--
-- The compare-and-set on (epoch, offset) makes a writer that raced a FLUSH, a restart that
-- lost the last second, or another writer stop instead of corrupting the index.
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
  -- Two contacts of one bucket may share the 32-bit member: count the extra holders.
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

local i = 11
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
if ARGV[8] ~= '' then
  -- Contacts that gained their first entry, for the gates' in-process filters. Trimmed
  -- by age with an exact MINID so a gate can tell whether it missed any (adds_floor).
  local adds = prefix .. ':adds'
  local floor = tonumber(ARGV[7]) - 600000
  redis.call('XADD', adds, 'MINID', floor, '*', 'm', ARGV[8])
  redis.call('HSET', meta, 'adds_floor', floor)
end
if ARGV[9] ~= '' then
  -- Progress of imports and API requests (added / already present), kept for a week.
  for ref, name, incr in string.gmatch(ARGV[9], '([^\31\30]+)\31([^\31\30]+)\31([^\31\30]+)') do
    local key = prefix .. ':ref:' .. ref
    redis.call('HINCRBY', key, name, incr)
    redis.call('EXPIRE', key, 604800)
  end
end
return 'OK'
