#!lua flags=allow-cross-slot-keys
-- Initialise an empty index, or check that an existing one has the expected layout.
-- KEYS[1] meta (KEYS[2] on a cluster node: the slot ranges the node's meta was written for)
-- ARGV: candidate epoch, layout, partitions (on a cluster node also: the fingerprint and
--       the ranges of the slots the node serves now).
-- Returns the index's (the node's) epoch. An index without an epoch is empty (new,
-- flushed, or restarted without its data): every partition's offset is absent, so the
-- list writers rebuild it from the changelog and the gates wait.
local meta = KEYS[1]
local layout = redis.call('HGET', meta, 'layout')
if layout and layout ~= ARGV[2] then
  return redis.error_reply('LAYOUT index has ' .. layout .. ', settings say ' .. ARGV[2])
end
local epoch = redis.call('HGET', meta, 'epoch')
local fp = ARGV[4] or ''

-- Every range of `now` inside one range of `before` (both "lo-hi,..." merged and sorted).
local function within(now, before)
  local have = {}
  for lo, hi in string.gmatch(before, '(%d+)-(%d+)') do
    have[#have + 1] = {tonumber(lo), tonumber(hi)}
  end
  for lo, hi in string.gmatch(now, '(%d+)-(%d+)') do
    lo, hi = tonumber(lo), tonumber(hi)
    local inside = false
    for _, r in ipairs(have) do
      if lo >= r[1] and hi <= r[2] then
        inside = true
        break
      end
    end
    if not inside then
      return false
    end
  end
  return true
end

if fp ~= '' and epoch and redis.call('HGET', meta, 'slots') ~= fp then
  -- The node's slots changed since its offsets were written (resharding). Slots it lost
  -- took their data away: what stays still matches the offsets. Slots it gained came with
  -- data written under another node's offsets, which may be ahead of or behind ours: the
  -- node starts a new epoch without offsets and the list writers replay it from the
  -- changelog (the gates wait meanwhile).
  if within(ARGV[5], redis.call('GET', KEYS[2]) or '') then
    redis.call('HSET', meta, 'slots', fp)
    redis.call('SET', KEYS[2], ARGV[5])
  else
    redis.call('DEL', meta)
    epoch = false
  end
end
if not epoch then
  redis.call('HSET', meta, 'epoch', ARGV[1], 'layout', ARGV[2], 'parts', ARGV[3])
  if fp ~= '' then
    redis.call('HSET', meta, 'slots', fp)
    redis.call('SET', KEYS[2], ARGV[5])
  end
  epoch = ARGV[1]
end
return epoch
