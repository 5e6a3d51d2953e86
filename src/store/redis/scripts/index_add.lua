-- Enters a session in a user's index (see `Op::IndexAdd`); the index
-- itself expires with its last lease. ARGV: prune batch, session id, score
-- (lease end plus `super::INDEX_MARGIN_MS`), renew (0/1).
prune()
if ARGV[4] == '1' then
  if not redis.call('ZSCORE', index, ARGV[2]) then return 0 end
  redis.call('ZADD', index, 'GT', ARGV[3], ARGV[2])
else
  redis.call('ZADD', index, ARGV[3], ARGV[2])
end
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
return 1
