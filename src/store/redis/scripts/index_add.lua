-- Enters a session in a user's index (see `Op::IndexAdd`); the index
-- itself expires with its last lease. Flags: RENEW (only an entry still
-- there is renewed). ARGV[4..]: prune batch, session id, score (lease end
-- plus `INDEX_MARGIN_MS`). Reply: {DONE}, or {ENDED} (no entry to renew).
prune()
if flag(RENEW) then
  if not redis.call('ZSCORE', index, ARGV[5]) then return {ENDED} end
  redis.call('ZADD', index, 'GT', ARGV[6], ARGV[5])
else
  redis.call('ZADD', index, ARGV[6], ARGV[5])
end
local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', index, last[2])
return {DONE}
