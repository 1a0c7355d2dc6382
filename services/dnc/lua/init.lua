-- Initialise an empty index, or check that an existing one has the expected layout.
-- KEYS[1] meta; ARGV: candidate epoch, layout, partitions.
-- Returns the index's epoch. An index without an epoch is empty (new, flushed, or
-- restarted without its data): every partition's offset is absent, so the list writers
-- rebuild it from the changelog and the gates wait.
local meta = KEYS[1]
local layout = redis.call('HGET', meta, 'layout')
if layout and layout ~= ARGV[2] then
  return redis.error_reply('LAYOUT index has ' .. layout .. ', settings say ' .. ARGV[2])
end
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  redis.call('HSET', meta, 'epoch', ARGV[1], 'layout', ARGV[2], 'parts', ARGV[3])
  epoch = ARGV[1]
end
return epoch
