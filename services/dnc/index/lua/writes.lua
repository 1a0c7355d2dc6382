-- What the scripts that write the index (apply.lua, replay.lua) share: their opening
-- checks and their helpers, put in place of their `-- #include writes.lua` line when they
-- are loaded (dnc.index.scripts), so it runs at the top level of each script. The
-- including script sets first:
--   SLOTS   its slot fingerprint argument ("" = a single Redis)
--   FIRST   the index of its first per-contact argument, STRIDE the arguments per contact
--   REFS    its progress counters argument
-- KEYS and ARGV[1..5] mean the same in both: meta hash, additions stream, the partition's
-- expiry index; prefix, epoch, partition, expected changes offset, new changes offset.
--
-- The compare-and-set on (epoch, offset) makes a writer that raced a FLUSH, a restart that
-- lost the last second, or another writer stop instead of corrupting the index.
local meta, adds, xkey = KEYS[1], KEYS[2], KEYS[3]
local prefix, epoch, part = ARGV[1], ARGV[2], ARGV[3]
local cluster = SLOTS ~= ''
if redis.call('HGET', meta, 'epoch') ~= epoch then
  return redis.error_reply('DIVERGED epoch')
end
if cluster and redis.call('HGET', meta, 'slots') ~= SLOTS then
  return redis.error_reply('DIVERGED slots')
end
local current = redis.call('HGET', meta, 'chg:' .. part)
if (current or '') ~= ARGV[4] then
  -- A cluster node keeps its own offsets, and a batch that reached only some nodes leaves
  -- those ahead of the index (the minimum over nodes). Such a node holds every change up
  -- to `current`: it skips a batch it holds whole, and takes one it holds in part in this
  -- single step, which leaves it exactly at the new offset (what the batch writes for a
  -- contact or an entry replaces what its earlier changes wrote). Never across steps: in
  -- between, an entry removed and added again within the batch would be missing. A node
  -- behind the caller lost data.
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
  for i = FIRST, #ARGV, STRIDE do
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
  for ref in string.gmatch(REFS, '([^\31\30]+)\31[^\31\30]+\31[^\31\30]+') do
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

-- Contacts that gained their first entry (`blob`: 8 bytes each), for the gates'
-- in-process filters. Trimmed by age with an exact MINID so a gate can tell whether it
-- missed any (adds_floor).
local function announce(blob, now_ms)
  if blob == '' then
    return
  end
  local floor = tonumber(now_ms) - 600000
  redis.call('XADD', adds, 'MINID', floor, '*', 'm', blob)
  redis.call('HSET', meta, 'adds_floor', floor)
end

-- Progress of imports and API requests (added / already present), kept for a week.
local function count_progress()
  for ref, name, incr in string.gmatch(REFS, '([^\31\30]+)\31([^\31\30]+)\31([^\31\30]+)') do
    local key = ref_key(ref)
    redis.call('HINCRBY', key, name, incr)
    redis.call('EXPIRE', key, 604800)
  end
end
