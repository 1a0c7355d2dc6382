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
--
-- The compare-and-set on (epoch, offset) makes a writer that raced a FLUSH, a restart that
-- lost the last second, or another writer stop instead of corrupting the index.
local meta, adds, xkey = KEYS[1], KEYS[2], KEYS[3]
local prefix, epoch, part = ARGV[1], ARGV[2], ARGV[3]
local cluster = ARGV[11] ~= ''
local FIRST = 12
if redis.call('HGET', meta, 'epoch') ~= epoch then
  return redis.error_reply('DIVERGED epoch')
end
if cluster and redis.call('HGET', meta, 'slots') ~= ARGV[11] then
  return redis.error_reply('DIVERGED slots')
end
local current = redis.call('HGET', meta, 'chg:' .. part)
if (current or '') ~= ARGV[4] then
  -- A cluster node keeps its own offsets, and a batch that reached only some nodes leaves
  -- those ahead of the index (the minimum over nodes). Such a node holds every change up
  -- to `current`: it skips a batch it holds whole, and takes one it holds in part in this
  -- single step, which leaves it exactly at the new offset (each contact gets its value
  -- as of the end of the batch). A node behind the caller lost data.
  local c, e = tonumber(current), tonumber(ARGV[4])
  if not cluster or c == nil or (e ~= nil and c < e) then
    return redis.error_reply('DIVERGED offset ' .. tostring(current) .. ' expected ' .. ARGV[4])
  end
  if c >= tonumber(ARGV[5]) then
    return 'SKIP'
  end
end

local function ref_key(ref)
  if cluster then
    return prefix .. ':ref:{' .. ref .. '}'
  end
  return prefix .. ':ref:' .. ref
end

if cluster then
  -- Nothing is written unless every key is on this node: an error half-way through a
  -- script keeps what it wrote. (In a slot being migrated a key that is not here yet
  -- fails too; the caller retries once the slot has moved.)
  local seen = {}
  for i = FIRST, #ARGV, 4 do
    local b = ARGV[i]
    if not seen[b] then
      seen[b] = true
      local t = '{' .. b .. '}'
      local r = redis.pcall('EXISTS', prefix .. ':m:' .. t, prefix .. ':g:' .. t, prefix .. ':gc:' .. t)
      if type(r) == 'table' and r.err then
        return redis.error_reply('TOPOLOGY ' .. r.err)
      end
    end
  end
  for ref in string.gmatch(ARGV[9], '([^\31\30]+)\31[^\31\30]+\31[^\31\30]+') do
    local r = redis.pcall('EXISTS', ref_key(ref))
    if type(r) == 'table' and r.err then
      return redis.error_reply('TOPOLOGY ' .. r.err)
    end
  end
end

-- The partition's expiry index: changelog keys of entries that expire, by expiry time
-- (the list writer's sweeper reads it). Maintained here, with the data, so it survives
-- restarts and is rebuilt with the index.
local function expiry(blob)
  if blob == '' then
    return
  end
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
if ARGV[8] ~= '' then
  -- Contacts that gained their first entry, for the gates' in-process filters. Trimmed
  -- by age with an exact MINID so a gate can tell whether it missed any (adds_floor).
  local floor = tonumber(ARGV[7]) - 600000
  redis.call('XADD', adds, 'MINID', floor, '*', 'm', ARGV[8])
  redis.call('HSET', meta, 'adds_floor', floor)
end
if ARGV[9] ~= '' then
  -- Progress of imports and API requests (added / already present), kept for a week.
  for ref, name, incr in string.gmatch(ARGV[9], '([^\31\30]+)\31([^\31\30]+)\31([^\31\30]+)') do
    local key = ref_key(ref)
    redis.call('HINCRBY', key, name, incr)
    redis.call('EXPIRE', key, 604800)
  end
end
return 'OK'
